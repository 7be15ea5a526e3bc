"""Callbacks end to end through the real relay and RQ workers, with a controllable clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import func, select

from intake import clock
from intake.callbacks import schedule_callback
from intake.models import (
    Call,
    Callback,
    CallbackAttempt,
    Event,
    Outbox,
    OutgoingMessage,
    Resident,
    Ticket,
)
from intake.service import receive
from tests.factories import call_contact
from tests.worker.helpers import run_jobs
from worker.callbacks import callback_call_ended, place_callbacks


def _missed_call(sessions, config, moment, purpose="missed_call", phone="+886912000001", **kw):
    receipt = receive(sessions, call_contact(text="", sender_phone=phone), config, now=moment)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        cb = schedule_callback(
            s, ticket, phone=phone, purpose=purpose, config=config, now=moment, **kw
        )
        s.commit()
        return cb.id, ticket.id


def _attempts(sessions, callback_id):
    with sessions() as s:
        return list(
            s.scalars(
                select(CallbackAttempt)
                .where(CallbackAttempt.callback_id == callback_id)
                .order_by(CallbackAttempt.attempt_no)
            )
        )


def _callback(sessions, callback_id):
    with sessions() as s:
        return s.get(Callback, callback_id)


def _end(attempt_id, status, at, answered_by=None):
    with clock.frozen(at):
        return callback_call_ended(attempt_id, status, answered_by)


def test_a_friday_night_missed_call_before_a_holiday_is_dialled_at_the_next_opening(
    demo, sessions, redis_url
):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    friday_night = datetime(2026, 10, 9, 22, 40, tzinfo=cfg.timezone)
    callback_id, _ = _missed_call(sessions, cfg, friday_night)
    run_jobs(conn, friday_night + timedelta(minutes=1))
    saturday_holiday = datetime(2026, 10, 10, 10, 0, tzinfo=cfg.timezone)
    run_jobs(conn, saturday_holiday)
    assert _attempts(sessions, callback_id) == []
    monday = datetime(2026, 10, 12, 9, 0, tzinfo=cfg.timezone)
    run_jobs(conn, monday)
    [attempt] = _attempts(sessions, callback_id)
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.call_sid == attempt.call_sid))
    assert call.direction == "outbound-api" and call.status == "queued"
    assert call.to_number == "+886912000001" and call.callback_id == callback_id
    assert call.meta["local"] is True
    assert call.meta["url"] == f"https://hotline.example.com/voice/outbound?attempt={attempt.id}"
    assert call.meta["status_callback"] == "https://hotline.example.com/voice/status"
    cb = _callback(sessions, callback_id)
    assert (cb.status, cb.attempts) == ("in_progress", 1)


def test_three_missed_calls_from_one_number_make_one_call(demo, sessions, redis_url):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    moment = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    for i in range(3):
        _missed_call(sessions, cfg, moment + timedelta(minutes=i))
    run_jobs(conn, moment + timedelta(minutes=5))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Callback)) == 1
        assert s.scalar(select(func.count()).select_from(Call)) == 1


def test_a_no_answer_retries_on_the_policy_never_at_night_and_then_hands_over(
    demo, sessions, redis_url
):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    monday = datetime(2026, 11, 30, 17, 0, tzinfo=cfg.timezone)
    callback_id, ticket_id = _missed_call(sessions, cfg, monday)
    run_jobs(conn, monday)
    [first] = _attempts(sessions, callback_id)
    assert "retry 2" in _end(first.id, "no-answer", monday + timedelta(minutes=1))
    cb = _callback(sessions, callback_id)
    assert cb.due_at == (monday + timedelta(minutes=31)).astimezone(cb.due_at.tzinfo)
    run_jobs(conn, monday + timedelta(minutes=20))
    assert len(_attempts(sessions, callback_id)) == 1, "spacing respected"
    run_jobs(conn, cb.due_at)
    second = _attempts(sessions, callback_id)[1]
    evening = datetime(2026, 11, 30, 17, 50, tzinfo=cfg.timezone)
    _end(second.id, "busy", evening)
    cb = _callback(sessions, callback_id)
    assert cb.due_at.astimezone(cfg.timezone) == datetime(2026, 12, 1, 9, 0, tzinfo=cfg.timezone)
    run_jobs(conn, datetime(2026, 11, 30, 22, 0, tzinfo=cfg.timezone))
    assert len(_attempts(sessions, callback_id)) == 2, "no call at night"
    run_jobs(conn, cb.due_at)
    third = _attempts(sessions, callback_id)[2]
    tuesday = datetime(2026, 12, 1, 9, 2, tzinfo=cfg.timezone)
    assert "needs an operator" in _end(third.id, "no-answer", tuesday)
    run_jobs(conn, tuesday)
    run_jobs(conn, tuesday + timedelta(days=3))
    cb = _callback(sessions, callback_id)
    assert (cb.status, cb.outcome, cb.attempts) == ("needs_operator", "no_answer", 3)
    assert len(_attempts(sessions, callback_id)) == 3
    with sessions() as s:
        [sms] = s.scalars(select(OutgoingMessage)).all()
        assert (sms.channel, sms.to, sms.template) == (
            "sms",
            "+886912000001",
            "reply_callback_missed_sms",
        )
        assert "未能致電聯絡上您" in sms.body_text
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.ticket_id == ticket_id))]
        assert kinds.count("callback_attempt") == 3 and "callback_needs_operator" in kinds


def test_a_reached_resident_closes_the_callback_and_repeated_or_stale_reports_change_nothing(
    demo, sessions, redis_url
):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    callback_id, _ = _missed_call(sessions, cfg, monday)
    run_jobs(conn, monday)
    [first] = _attempts(sessions, callback_id)
    _end(first.id, "completed", monday, answered_by="machine_end_beep")
    assert _callback(sessions, callback_id).outcome == "voicemail_left"
    assert _end(first.id, "completed", monday) == "already recorded"
    run_jobs(conn, _callback(sessions, callback_id).due_at)
    second = _attempts(sessions, callback_id)[1]
    _end(second.id, "completed", monday + timedelta(hours=1), answered_by="human")
    cb = _callback(sessions, callback_id)
    assert (cb.status, cb.outcome, cb.attempts) == ("done", "reached", 2)
    assert _end(second.id, "no-answer", monday + timedelta(hours=2)) == "already recorded"
    assert _callback(sessions, callback_id).status == "done"


def test_virtual_hold_callbacks_are_dialled_in_the_order_callers_queued(demo, sessions, redis_url):
    cfg = demo.config
    conn = Redis.from_url(redis_url)
    opening = datetime(2026, 11, 30, 9, 0, tzinfo=cfg.timezone)
    night = datetime(2026, 11, 29, 23, 0, tzinfo=cfg.timezone)
    queued = {"+886912000002": 3, "+886912000005": 1, "+886912000001": 2}
    for phone, minute in queued.items():
        _missed_call(
            sessions,
            cfg,
            night,
            purpose="virtual_hold",
            phone=phone,
            queued_at=night - timedelta(minutes=10 - minute),
        )
    run_jobs(conn, opening)
    with sessions() as s:
        order = [
            s.get(Callback, a.callback_id).phone
            for a in s.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id))
        ]
    assert order == ["+886912000005", "+886912000001", "+886912000002"]


def test_the_residents_preferred_time_moves_the_callback(demo, sessions, redis_url):
    cfg = demo.config
    with sessions() as s:
        resident = s.scalar(select(Resident).where(Resident.name == "陳大文"))
        resident.preferred_contact_time = "14:00-17:00"
        s.commit()
    morning = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    callback_id, _ = _missed_call(sessions, cfg, morning)
    cb = _callback(sessions, callback_id)
    assert cb.due_at.astimezone(cfg.timezone) == datetime(2026, 11, 30, 14, 0, tzinfo=cfg.timezone)


def test_a_lost_timer_is_restored_from_the_callback_row(demo, sessions, redis_url):
    from worker.housekeeping import restore_callback_timers

    cfg = demo.config
    conn = Redis.from_url(redis_url)
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    callback_id, _ = _missed_call(sessions, cfg, monday)
    with sessions() as s:
        s.execute(
            Outbox.__table__.update().where(Outbox.job == "place_callback").values(status="failed")
        )
        s.commit()
    assert restore_callback_timers(sessions, monday + timedelta(minutes=5)) == 1
    assert restore_callback_timers(sessions, monday + timedelta(minutes=5)) == 0
    run_jobs(conn, monday + timedelta(minutes=5))
    assert len(_attempts(sessions, callback_id)) == 1


def _due_together(sessions, cfg, count):
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    later = monday + timedelta(minutes=5)
    ids = [
        _missed_call(sessions, cfg, monday, phone=f"+88691200010{i}", not_before=later)[0]
        for i in range(count)
    ]
    return ids, max(_callback(sessions, i).due_at for i in ids)


def _dialled(sessions, callback_ids):
    with sessions() as s:
        return {
            callback_id: (
                s.scalar(
                    select(func.count())
                    .select_from(CallbackAttempt)
                    .where(CallbackAttempt.callback_id == callback_id)
                ),
                s.scalar(
                    select(func.count()).select_from(Call).where(Call.callback_id == callback_id)
                ),
            )
            for callback_id in callback_ids
        }


def test_callbacks_due_together_go_as_one_job_and_each_is_dialled_once(
    demo, sessions, redis_url, settings
):
    from rq import Queue

    from worker.outbox import relay_once

    conn = Redis.from_url(redis_url)
    ids, due = _due_together(sessions, demo.config, 4)
    run_jobs(conn, due - timedelta(seconds=30))  # routing and acknowledgements, nothing dialled
    assert _dialled(sessions, ids) == dict.fromkeys(ids, (0, 0))
    with clock.frozen(due):
        assert relay_once(sessions, conn, settings.database_url, now=due) == 4
    with sessions() as s:
        job_ids = set(s.scalars(select(Outbox.rq_job_id).where(Outbox.job == "place_callback")))
    [job_id] = job_ids
    [job] = [j for name in ("default", "urgent", "low") for j in Queue(name, connection=conn).jobs]
    assert job.id == job_id and job.kwargs == {"callback_ids": ids}
    run_jobs(conn, due)
    assert _dialled(sessions, ids) == dict.fromkeys(ids, (1, 1))
    with sessions() as s:
        statuses = set(s.scalars(select(Outbox.status).where(Outbox.job == "place_callback")))
    assert statuses == {"done"}
    with clock.frozen(due):  # the same batch delivered twice dials nobody again
        assert place_callbacks(ids) == "4 already"
    assert _dialled(sessions, ids) == dict.fromkeys(ids, (1, 1))


def test_a_batch_lost_with_redis_is_relayed_again_and_dials_nobody_twice(
    demo, sessions, redis_url, settings
):
    from worker.outbox import reconcile_once, relay_once

    conn = Redis.from_url(redis_url)
    ids, due = _due_together(sessions, demo.config, 5)
    run_jobs(conn, due - timedelta(seconds=30))
    with clock.frozen(due):
        relay_once(sessions, conn, settings.database_url, now=due)
    conn.flushdb()  # Redis restarted before any worker took the batch
    later = due + timedelta(minutes=5)
    assert reconcile_once(sessions, conn, now=later)["requeued"] == 5
    run_jobs(conn, later + timedelta(minutes=5))
    assert _dialled(sessions, ids) == dict.fromkeys(ids, (1, 1))
    with sessions() as s:  # the batch ran, but its success callback never reached the database
        s.execute(
            Outbox.__table__.update()
            .where(Outbox.job == "place_callback")
            .values(status="enqueued")
        )
        s.commit()
    conn.flushdb()
    assert reconcile_once(sessions, conn, now=later + timedelta(hours=1))["requeued"] == 5
    run_jobs(conn, later + timedelta(hours=2))
    assert _dialled(sessions, ids) == dict.fromkeys(ids, (1, 1))
    with sessions() as s:
        statuses = set(s.scalars(select(Outbox.status).where(Outbox.job == "place_callback")))
    assert statuses == {"done"}


def test_a_local_call_nobody_answers_is_settled_as_no_answer_by_the_housekeeper(
    demo, sessions, redis_url
):
    from worker.callbacks import chase_silent_calls
    from worker.housekeeping import schedule_periodic

    conn = Redis.from_url(redis_url)
    [callback_id], due = _due_together(sessions, demo.config, 1)
    run_jobs(conn, due)
    with clock.frozen(due + timedelta(minutes=10)):
        assert chase_silent_calls() == "0 silent call(s) settled", "not silent yet"
    later = due + timedelta(minutes=25)
    assert schedule_periodic(sessions, later) == 8  # the periodic jobs, the chase among them
    run_jobs(conn, later)
    [attempt] = _attempts(sessions, callback_id)
    assert (attempt.status, attempt.outcome) == ("ended", "no_answer")
    cb = _callback(sessions, callback_id)
    assert (cb.status, cb.attempts) == ("scheduled", 1)
    assert cb.due_at > due + timedelta(minutes=25)
