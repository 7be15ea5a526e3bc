"""Sending an SMS through Twilio: claimed once, permanent refusals failed for good, the rest retried."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select, update

from intake import clock
from intake.models import ContactPoint, Event, Outbox, OutgoingMessage
from intake.service import receive
from tests.factories import call_contact
from tests.worker.helpers import FakeTwilio, run_jobs
from worker.outbox import reconcile_once
from worker.scripted import send_scripted_reply
from worker.sms import send_sms

NOW = datetime(2026, 11, 30, 10, 0).astimezone()
RESIDENT = "+886912000001"


@pytest.fixture(autouse=True)
def _the_test_world_is_monday_morning():
    with clock.frozen(NOW):
        yield


def _sms(sessions, config) -> tuple[int, int]:
    """A resident's ticket and the SMS reply owed to them (queued, not sent yet)."""
    receipt = receive(sessions, call_contact(text="電梯壞了", sender_phone=RESIDENT), config)
    send_scripted_reply(receipt.ticket_id, "need_more_info", channel="sms")
    with sessions() as s:
        sms = s.scalar(select(OutgoingMessage).where(OutgoingMessage.channel == "sms"))
        assert sms is not None and sms.status == "queued"
        return receipt.ticket_id, sms.id


def _row(sessions, sms_id: int) -> OutgoingMessage:
    with sessions() as s:
        row = s.get(OutgoingMessage, sms_id)
        assert row is not None
        return row


def _posts(fake: FakeTwilio) -> list[dict]:
    return [r for r in fake.requests if r["uri"].endswith("/Messages.json")]


def _events(sessions, ticket_id: int, kind: str) -> list[Event]:
    with sessions() as s:
        return list(
            s.scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == kind))
        )


def test_it_sends_once_even_when_the_job_runs_twice(twilio, sessions, demo):
    _, sms_id = _sms(sessions, demo.config)
    assert send_sms(sms_id).startswith("sent SM")
    assert send_sms(sms_id) == "already sent"
    row = _row(sessions, sms_id)
    assert (row.status, row.attempts, row.error) == ("sent", 1, None)
    assert row.message_id == twilio.messages[0]["sid"]
    [post] = _posts(twilio)
    assert post["data"]["To"] == RESIDENT and post["data"]["From"] == "+886227000000"


def test_a_row_another_worker_is_sending_is_not_sent_again(twilio, sessions, demo):
    _, sms_id = _sms(sessions, demo.config)
    with sessions() as s:
        s.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == sms_id)
            .values(status="sending", sent_at=NOW - timedelta(seconds=80), attempts=1)
        )
        s.commit()
    assert send_sms(sms_id).startswith("being sent elsewhere")  # the 90 s lease is live
    assert _posts(twilio) == []
    assert _row(sessions, sms_id).status == "sending"
    with sessions() as s:  # tried again once the lease lapses, in case that worker died
        [retry] = s.scalars(select(Outbox).where(Outbox.dedupe_key.like("lease:%"))).all()
        assert (retry.job, retry.args) == ("send_sms", {"outgoing_id": sms_id})
        assert retry.available_at > NOW + timedelta(seconds=10)


def test_a_claim_left_by_a_killed_worker_is_taken_again_after_its_lease(twilio, sessions, demo):
    _, sms_id = _sms(sessions, demo.config)
    with sessions() as s:
        s.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == sms_id)
            .values(status="sending", sent_at=NOW - timedelta(seconds=91), attempts=1)
        )
        s.commit()
    assert send_sms(sms_id).startswith("sent SM")
    row = _row(sessions, sms_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(_posts(twilio)) == 1


@pytest.mark.parametrize(
    ("code", "unreachable"),
    [("21211", True), ("21610", False), ("21614", False), ("21408", False)],
)
def test_a_permanent_refusal_fails_the_sms_for_good_and_says_so_on_the_ticket(
    twilio, sessions, demo, code, unreachable
):
    ticket_id, sms_id = _sms(sessions, demo.config)
    twilio.sms_script = [code]
    result = send_sms(sms_id)
    assert result.startswith("failed") and code in result
    assert send_sms(sms_id) == "already failed"
    assert len(_posts(twilio)) == 1, "never retried"
    row = _row(sessions, sms_id)
    assert row.status == "failed" and f"400 {code}" in (row.error or "")
    [event] = _events(sessions, ticket_id, "sms_failed")
    assert RESIDENT in event.message and code in event.message
    assert event.data["code"] == int(code)
    with sessions() as s:
        point = s.scalar(
            select(ContactPoint).where(ContactPoint.kind == "phone", ContactPoint.value == RESIDENT)
        )
        assert point is not None and point.unreachable is unreachable


@pytest.mark.parametrize("answer", ["429", "503", "lost"])
def test_a_transient_failure_leaves_it_queued_and_fails_the_job(twilio, sessions, demo, answer):
    ticket_id, sms_id = _sms(sessions, demo.config)
    twilio.sms_script = [answer]
    with pytest.raises(Exception):  # noqa: B017 - the job fails, whatever Twilio's client raised
        send_sms(sms_id)
    row = _row(sessions, sms_id)
    assert row.status == "queued" and row.error and row.sent_at is None
    assert _events(sessions, ticket_id, "sms_failed") == []
    assert send_sms(sms_id).startswith("sent SM"), "the retry sends it"
    assert _row(sessions, sms_id).attempts == 2


def test_the_relayed_job_fails_on_a_503_and_the_reconciler_retries_it(
    twilio, sessions, demo, redis_url
):
    _, sms_id = _sms(sessions, demo.config)
    twilio.sms_script = ["503"]
    conn = Redis.from_url(redis_url)
    run_jobs(conn, NOW)
    with sessions() as s:
        job = s.scalar(select(Outbox).where(Outbox.dedupe_key == f"send:{sms_id}"))
        assert job is not None and job.status != "done"
    assert _row(sessions, sms_id).status == "queued"
    later = NOW + timedelta(hours=1)
    assert reconcile_once(sessions, conn, now=later)["requeued"] == 1
    run_jobs(conn, later + timedelta(minutes=30))
    row = _row(sessions, sms_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len([p for p in _posts(twilio) if p["data"]["Body"] == row.body_text]) == 2
