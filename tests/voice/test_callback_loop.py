"""The whole loop with the worker's real jobs: a missed call, the worker's local dialer places the
callback, the simulator answers it, the status callback ends the attempt through RQ."""

from __future__ import annotations

from sqlalchemy import select

from intake.models import Callback, CallbackAttempt, Outbox
from tests.voice.conftest import check_twiml
from voice.cli import _queued_local_call
from voice.simulator import HANGUP


def test_missed_call_is_called_back_and_answered(
    phone, simulator_for, sessions, demo, redis_url
) -> None:  # type: ignore[no-untyped-def]
    from worker.callbacks import place_callback
    from worker.runner import drain

    phone([HANGUP], caller="+886912000002")
    with sessions() as session:
        [callback] = session.scalars(select(Callback))
        assert callback.purpose == "missed_call" and callback.status == "scheduled"
        due = callback.due_at
    place_callback(callback.id, now=due.isoformat())
    sid, url, status_callback, from_, to = _queued_local_call(demo.database_url, None)
    assert to == "+886912000002"
    result = simulator_for([]).answer(sid, url, status_callback, from_number=from_, to_number=to)
    check_twiml(result)
    assert "就您的單號" in result.said[0][1]
    with sessions() as session:
        [row] = session.scalars(select(Outbox).where(Outbox.job == "callback_call_ended"))
        assert row.args["call_status"] == "completed"
    drain()
    with sessions() as session:
        attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.call_sid == sid))
        assert attempt is not None and attempt.status == "ended" and attempt.outcome == "reached"
        assert session.get(Callback, callback.id).status == "done"
