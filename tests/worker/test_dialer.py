"""The Twilio path of the dialer, against a fake Twilio plugged into the twilio package's HttpClient."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select

from intake.callbacks import schedule_callback
from intake.models import Call, Callback, CallbackAttempt, ContactPoint, OutgoingMessage, Ticket
from intake.service import receive
from tests.factories import call_contact
from tests.worker.helpers import run_jobs
from voice import dialer
from worker.outbox import reconcile_once

MONDAY = datetime(2026, 11, 30, 10, 0).astimezone()


def _callback(sessions, config, phone="+886912000001"):
    moment = MONDAY.astimezone(config.timezone).replace(hour=10)
    receipt = receive(sessions, call_contact(text="", sender_phone=phone), config, now=moment)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        cb = schedule_callback(
            s, ticket, phone=phone, purpose="missed_call", config=config, now=moment
        )
        s.commit()
        return cb.id, moment


def _posts(fake):
    return [r for r in fake.requests if r["method"] == "POST" and r["uri"].endswith("/Calls.json")]


def _state(sessions, callback_id):
    with sessions() as s:
        cb = s.get(Callback, callback_id)
        attempts = list(
            s.scalars(select(CallbackAttempt).where(CallbackAttempt.callback_id == callback_id))
        )
        return cb, attempts


def test_a_201_places_the_call_with_status_callback_and_machine_detection(
    twilio, sessions, redis_url, settings
):
    from intake.config import get_settings

    config = get_settings().config
    callback_id, moment = _callback(sessions, config)
    run_jobs(Redis.from_url(redis_url), moment)
    [post] = _posts(twilio)
    cb, [attempt] = _state(sessions, callback_id)
    assert post["data"]["To"] == "+886912000001" and post["data"]["From"] == "+886227000000"
    assert post["data"]["Url"] == f"https://hotline.example.com/voice/outbound?attempt={attempt.id}"
    assert post["data"]["StatusCallback"] == "https://hotline.example.com/voice/status"
    assert post["data"]["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert post["data"]["MachineDetection"] == "Enable"
    assert attempt.call_sid == twilio.calls[0]["sid"] and attempt.status == "dialled"
    assert (cb.status, cb.current_call_sid) == ("in_progress", attempt.call_sid)
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.call_sid == attempt.call_sid))
        assert call.callback_id == callback_id and "local" not in call.meta


@pytest.mark.parametrize("failure", ["429", "503"])
def test_429_and_5xx_back_off_and_retry_without_spending_an_attempt(
    twilio, sessions, redis_url, failure
):
    from intake.config import get_settings

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    twilio.script = [failure]
    callback_id, moment = _callback(sessions, config)
    run_jobs(conn, moment)
    cb, [failed] = _state(sessions, callback_id)
    assert failed.status == "error" and failure in failed.error
    assert cb.status == "scheduled" and cb.attempts == 0
    if failure == "429":
        assert conn.pttl(dialer.COOLDOWN_KEY) > 0, "every worker cools down after a 429"
        conn.delete(dialer.COOLDOWN_KEY)
    run_jobs(conn, cb.due_at + timedelta(seconds=1))
    cb, attempts = _state(sessions, callback_id)
    assert len(_posts(twilio)) == 2
    assert (cb.status, cb.attempts) == ("in_progress", 1)
    assert attempts[-1].call_sid == twilio.calls[0]["sid"]


def test_an_invalid_number_is_permanent_and_goes_to_an_operator(twilio, sessions, redis_url):
    from intake.config import get_settings

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    twilio.script = ["21211"]
    callback_id, moment = _callback(sessions, config)
    run_jobs(conn, moment)
    cb, [attempt] = _state(sessions, callback_id)
    assert (cb.status, cb.outcome, attempt.outcome) == (
        "needs_operator",
        "wrong_number",
        "wrong_number",
    )
    assert len(_posts(twilio)) == 1
    with sessions() as s:
        point = s.scalar(select(ContactPoint).where(ContactPoint.value == "+886912000001"))
        assert point.unreachable
        [mail] = s.scalars(select(OutgoingMessage)).all()
        assert (mail.channel, mail.to) == ("email", "chan.taiman@example.com")


def test_a_lost_response_is_looked_up_and_never_dialled_twice(twilio, sessions, redis_url):
    from intake.config import get_settings

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    twilio.script = ["lost"]
    callback_id, moment = _callback(sessions, config)
    run_jobs(conn, moment)
    cb, [attempt] = _state(sessions, callback_id)
    assert attempt.call_sid is None and attempt.error == dialer.PLACING_MARK
    assert len(twilio.calls) == 1, "Twilio did create the call"
    assert reconcile_once(sessions, conn, now=moment + timedelta(days=1))["requeued"] == 1
    run_jobs(conn, moment + timedelta(days=1, minutes=5))
    cb, [attempt] = _state(sessions, callback_id)
    assert len(_posts(twilio)) == 1, "found through calls.list, not placed again"
    assert any(r["method"] == "GET" for r in twilio.requests)
    assert attempt.call_sid == twilio.calls[0]["sid"] and cb.status == "in_progress"


def test_a_request_lost_before_twilio_created_anything_is_placed_after_the_lookup(
    twilio, sessions, redis_url, monkeypatch
):
    from intake.config import get_settings

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    callback_id, moment = _callback(sessions, config)
    original = twilio.request

    def drop_first_post(method, uri, **kw):  # type: ignore[no-untyped-def]
        if method == "POST" and not getattr(drop_first_post, "done", False):
            drop_first_post.done = True  # type: ignore[attr-defined]
            twilio.requests.append({"method": method, "uri": uri, **kw})
            import requests

            raise requests.exceptions.ConnectTimeout("connect timed out")
        return original(method, uri, **kw)

    monkeypatch.setattr(twilio, "request", drop_first_post)
    run_jobs(conn, moment)
    assert twilio.calls == []
    reconcile_once(sessions, conn, now=moment + timedelta(days=1))
    run_jobs(conn, moment + timedelta(days=1, minutes=5))
    _cb, [attempt] = _state(sessions, callback_id)
    assert len(twilio.calls) == 1 and attempt.call_sid == twilio.calls[0]["sid"]


def test_the_token_bucket_is_shared_through_redis(redis_url):
    conn = Redis.from_url(redis_url)
    limit = dialer.RateLimit(calls_per_second=1.0, burst=1.0)
    dialer.take_token(conn, limit)
    other_worker = Redis.from_url(redis_url)
    with pytest.raises(dialer.DialError) as err:
        dialer.take_token(other_worker, limit, max_wait=0.05)
    assert not err.value.permanent and 0 < err.value.retry_after <= 1.0
    conn.delete(dialer.BUCKET_KEY)
    dialer.cool_down(conn, 5)
    with pytest.raises(dialer.DialError):
        dialer.take_token(other_worker, limit, max_wait=0.05)


def test_a_lost_response_in_a_batch_holds_up_no_one_and_is_never_dialled_twice(
    twilio, sessions, redis_url
):
    from intake.config import get_settings
    from intake.models import Outbox

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    phones = ["+886912000001", "+886912000002", "+886912000005"]
    placed = [_callback(sessions, config, phone) for phone in phones]
    ids, moment = [callback_id for callback_id, _ in placed], placed[0][1]
    twilio.script = ["201", "lost", "201"]
    run_jobs(conn, moment)
    with sessions() as s:
        assert (
            len(set(s.scalars(select(Outbox.rq_job_id).where(Outbox.job == "place_callback")))) == 1
        )
    states = [_state(sessions, callback_id) for callback_id in ids]
    assert [attempt.call_sid is not None for _, [attempt] in states] == [True, False, True]
    assert len(twilio.calls) == 3, "Twilio created the second call too"
    assert reconcile_once(sessions, conn, now=moment + timedelta(days=1))["requeued"] == 3
    run_jobs(conn, moment + timedelta(days=1, minutes=5))
    assert len(_posts(twilio)) == 3, "the lost one is found through calls.list"
    states = [_state(sessions, callback_id) for callback_id in ids]
    assert [attempt.call_sid for _, [attempt] in states] == [c["sid"] for c in twilio.calls]
    assert {cb.status for cb, _ in states} == {"in_progress"}


def test_a_call_whose_final_status_never_arrives_is_asked_about_and_retried(
    twilio, sessions, redis_url
):
    from intake.clock import frozen
    from intake.config import get_settings
    from worker.callbacks import chase_silent_calls

    config = get_settings().config
    conn = Redis.from_url(redis_url)
    callback_id, moment = _callback(sessions, config)
    run_jobs(conn, moment)
    [call] = twilio.calls
    call["status"] = "in-progress"  # the resident is still talking: nothing to settle
    with frozen(moment + timedelta(minutes=30)):
        assert chase_silent_calls() == "0 silent call(s) settled"
    assert _state(sessions, callback_id)[0].status == "in_progress"
    call["status"] = "no-answer"  # Twilio's status callback was lost on the way
    with frozen(moment + timedelta(minutes=35)):
        assert chase_silent_calls() == "1 silent call(s) settled"
        assert chase_silent_calls() == "0 silent call(s) settled"
    cb, [attempt] = _state(sessions, callback_id)
    assert (attempt.status, attempt.outcome) == ("ended", "no_answer")
    assert (cb.status, cb.outcome) == ("scheduled", "no_answer"), "retried on the policy"
    with sessions() as s:
        assert s.scalar(select(Call.status).where(Call.call_sid == call["sid"])) == "no-answer"
