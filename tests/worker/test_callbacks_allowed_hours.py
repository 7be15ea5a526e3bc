"""A callback's edges stay inside the allowed hours: a late final status does not text a resident
at night, and backing off from Twilio's errors does not carry a call past closing."""

from __future__ import annotations

from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import select

from intake import clock
from intake.callbacks import schedule_callback
from intake.models import Callback, CallbackAttempt, OutgoingMessage, Ticket
from intake.service import receive
from tests.factories import call_contact
from tests.worker.helpers import run_jobs
from worker.callbacks import callback_call_ended

PHONE = "+886912000001"


def _missed_call(sessions, config, moment) -> int:  # type: ignore[no-untyped-def]
    receipt = receive(sessions, call_contact(text="", sender_phone=PHONE), config, now=moment)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        cb = schedule_callback(
            s, ticket, phone=PHONE, purpose="missed_call", config=config, now=moment
        )
        s.commit()
        return int(cb.id)


def _attempts(sessions, callback_id) -> list[CallbackAttempt]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return list(
            s.scalars(
                select(CallbackAttempt)
                .where(CallbackAttempt.callback_id == callback_id)
                .order_by(CallbackAttempt.attempt_no)
            )
        )


def _messages(sessions) -> list[OutgoingMessage]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return list(s.scalars(select(OutgoingMessage).order_by(OutgoingMessage.id)))


def test_the_missed_you_sms_after_a_late_final_status_waits_for_the_end_of_quiet_hours(
    demo, sessions, redis_url
):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    monday = datetime(2026, 11, 30, 17, 0, tzinfo=cfg.timezone)
    callback_id = _missed_call(sessions, cfg, monday)
    tuesday = datetime(2026, 12, 1, 9, 0, tzinfo=cfg.timezone)
    for dialled in (monday, monday + timedelta(minutes=31)):
        run_jobs(conn, dialled)
        with clock.frozen(dialled + timedelta(minutes=1)):
            callback_call_ended(_attempts(sessions, callback_id)[-1].id, "no-answer")
    with sessions() as s:
        assert s.get(Callback, callback_id).due_at.astimezone(cfg.timezone) == tuesday  # type: ignore[union-attr]
    # The third attempt is dialled at Tuesday's opening; its final status is lost on the way and
    # only settled late in the evening, inside quiet hours (21:00-09:00).
    run_jobs(conn, tuesday)
    third = _attempts(sessions, callback_id)[-1]
    assert third.attempt_no == 3
    late = datetime(2026, 12, 1, 22, 30, tzinfo=cfg.timezone)
    with clock.frozen(late):
        assert "needs an operator" in callback_call_ended(third.id, "no-answer")
    run_jobs(conn, late)
    run_jobs(conn, datetime(2026, 12, 2, 8, 59, tzinfo=cfg.timezone))
    assert _messages(sessions) == [], "no text at night"
    morning = datetime(2026, 12, 2, 9, 0, tzinfo=cfg.timezone)
    run_jobs(conn, morning)
    [sms] = _messages(sessions)
    assert (sms.channel, sms.to, sms.template) == ("sms", PHONE, "reply_callback_missed_sms")
    assert sms.created_at.astimezone(cfg.timezone) == morning


def test_backing_off_from_twilio_errors_near_closing_waits_for_the_next_opening(
    twilio, sessions, redis_url
):
    from intake.config import get_settings

    cfg = get_settings().config
    conn = Redis.from_url(redis_url)
    friday = datetime(2026, 12, 4, 17, 59, 50, tzinfo=cfg.timezone)
    callback_id = _missed_call(sessions, cfg, friday)
    twilio.script = ["503"]
    run_jobs(conn, friday)
    with sessions() as s:
        cb = s.get(Callback, callback_id)
        assert cb is not None and cb.status == "scheduled"
        due = cb.due_at.astimezone(cfg.timezone)
    saturday = datetime(2026, 12, 5, 9, 0, tzinfo=cfg.timezone)
    assert due == saturday, "not at 18:00:00 Friday, after closing"
    run_jobs(conn, friday + timedelta(minutes=5))
    posts = [r for r in twilio.requests if r["uri"].endswith("/Calls.json")]
    assert len([p for p in posts if p["method"] == "POST"]) == 1
    run_jobs(conn, saturday)
    assert len(twilio.calls) == 1
    assert [a.status for a in _attempts(sessions, callback_id)] == ["error", "dialled"]
