"""Webhooks of one call that race each other, on PostgreSQL with real threads and connections:
one owed callback however many requests owe it, and duplicate status callbacks handled quietly."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from sqlalchemy import select

from intake.models import Call, Callback, CallStatusEvent
from intake.service import receive
from tests.factories import call_contact
from voice import filing
from voice.signature import sign

CALLER = "+886912000001"
THREADS = 8


def _call(sessions: Any, demo: Any, sid: str) -> Call:
    receipt = receive(sessions, call_contact(text=""), demo.config)
    with sessions() as s:
        call = Call(
            call_sid=sid,
            direction="inbound",
            from_number=CALLER,
            to_number="+886227000000",
            status="in-progress",
            status_sequence=1,
            ticket_id=receipt.ticket_id,
            filed=True,
            greeted=True,
        )
        s.add(call)
        s.commit()
        return call


def _at_once(work: Any, n: int = THREADS) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.parametrize("purpose", ["voicemail", "after_hours", "virtual_hold"])
def test_concurrent_requests_owe_one_callback(demo, sessions, db_url, purpose):
    """Issue 12 item 15: 8 concurrent recording posts gave 7 voicemail callbacks."""
    if not db_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL")
    for round_no in range(3):
        call = _call(sessions, demo, f"CA{purpose[:4]}{round_no:02d}" + "0" * 24)
        ids = _at_once(
            lambda _i, call=call: filing.owe_callback(sessions, call, demo.config, purpose)
        )
        with sessions() as s:
            owed = s.scalars(
                select(Callback.id).where(
                    Callback.ticket_id == call.ticket_id, Callback.purpose == purpose
                )
            ).all()
        assert len(owed) == 1 and set(ids) == set(owed)


def test_concurrent_duplicate_status_callbacks_are_recorded_once_without_errors(
    demo, sessions, caplog
):
    """Issue 12 item 18: duplicate status callbacks at once logged ERROR tracebacks (500s)."""
    from web.app import create_app

    app = create_app({"TESTING": True}, settings=demo)
    sid = "CA" + "5" * 32
    _call(sessions, demo, sid)
    form = {
        "CallSid": sid,
        "From": CALLER,
        "To": "+886227000000",
        "CallStatus": "completed",
        "CallDuration": "42",
        "SequenceNumber": "3",
        "Direction": "inbound",
    }
    headers = {
        "X-Twilio-Signature": sign(
            demo.webhook_auth_token, demo.public_base_url + "/voice/status", form
        )
    }
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        with sessions() as s:
            s.execute(CallStatusEvent.__table__.delete())
            s.execute(
                Call.__table__.update()
                .where(Call.call_sid == sid)
                .values(status="in-progress", ended_at=None)
            )
            s.commit()
        codes = _at_once(
            lambda _i: (
                app.test_client().post("/voice/status", data=form, headers=headers).status_code
            )
        )
        assert codes == [200] * THREADS
        with sessions() as s:
            assert len(s.scalars(select(CallStatusEvent)).all()) == 1
            call = s.scalar(select(Call).where(Call.call_sid == sid))
            assert call.status == "completed" and call.duration_seconds == 42
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
