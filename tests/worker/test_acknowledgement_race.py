from __future__ import annotations

import contextlib
import threading

from sqlalchemy import func, select

import worker.replies
from intake.models import Event, Outbox, OutgoingMessage
from intake.service import receive
from tests.factories import email_contact


def test_workers_acknowledging_at_once_stay_within_the_per_sender_limit(
    demo, sessions, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Four first mails from one sender acknowledged by four workers at the same moment: the
    hourly limit (3) holds. Each job is held right after counting the sender's acknowledgements
    until all four have counted or a second has passed; deciding one at a time, none waits for
    the others, and the fourth counts three."""
    for n in range(4):
        receive(sessions, email_contact(subject=f"第{n}件", text=f"投訴第{n}件事"), demo.config)
    with sessions() as session:
        jobs = [
            row.args for row in session.scalars(select(Outbox).where(Outbox.job == "acknowledge"))
        ]
    assert len(jobs) == 4
    counted = threading.Barrier(len(jobs), timeout=1)
    count_acks = worker.replies._recent_acks

    def counted_then_held(session, since_minutes, to=None):  # type: ignore[no-untyped-def]
        result = count_acks(session, since_minutes, to)
        if to is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                counted.wait()
        return result

    monkeypatch.setattr(worker.replies, "_recent_acks", counted_then_held)
    threads = [
        threading.Thread(
            target=worker.replies.acknowledge, args=(job["ticket_id"], job["interaction_id"])
        )
        for job in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    with sessions() as session:
        sent = session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.template == "ack_email")
        )
        suppressed = session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "ack_suppressed")
        )
    assert (sent, suppressed) == (3, 1)
