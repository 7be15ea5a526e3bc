"""On-call pages of an emergency: the first person on call to answer stops every page and takes it.

The caller's live <Dial> (`voice.ivr.emergency`) and 1 pressed on a page call (`voice.ivr.page`)
both land here; the worker (`worker.notify`) starts and advances the page chain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.db import rowcount
from intake.models import Operator, Page, Ticket, utcnow
from intake.tickets import record_event

# A page still running, or one that ran out of people (a late answer still counts).
STOPPABLE = ("paging", "exhausted")


def on_call_answered(
    session: Session, ticket_id: int, number: str | None, *, how: str, page_id: int | None = None
) -> bool:
    """Someone on call answered the emergency (the caller's live <Dial>, or 1 pressed on a page
    call): every page of the ticket stops, and they become its assignee (the operator whose phone
    is `number`; without one, the timeline says who answered). The first answer wins; the caller
    commits. Returns whether this answer was the first.

    A ticket not paged yet gets its page row already acknowledged, so the page never starts.
    """
    now = utcnow()
    by = number or "unknown"

    def stop(*which: Any) -> int:
        return int(
            rowcount(
                session.execute(
                    update(Page)
                    .where(Page.ticket_id == ticket_id, Page.status.in_(STOPPABLE), *which)
                    .values(status="acknowledged", acknowledged_by=number, acknowledged_at=now)
                    .execution_options(synchronize_session=False)
                )
            )
        )

    if page_id is not None:  # 1 pressed on this page's call: it must still be running
        if not stop(Page.id == page_id):
            return False
        stop()  # and any other page of the ticket
    elif not stop():
        if session.scalar(
            select(Page.id).where(Page.ticket_id == ticket_id, Page.status == "acknowledged")
        ):
            return False
        session.add(
            Page(
                ticket_id=ticket_id,
                reason="emergency",
                chain=[],
                status="acknowledged",
                acknowledged_by=number,
                acknowledged_at=now,
            )
        )
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    record_event(
        session,
        ticket,
        "page_acknowledged",
        f"{by} answered ({how}): the on-call page stops",
        actor=by,
        number=number,
        how=how,
        page_id=page_id,
    )
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
    operator = (
        session.scalar(
            select(Operator)
            .where(Operator.phone == number, Operator.active.is_(True))
            .order_by(Operator.id)
            .limit(1)
        )
        if number
        else None
    )
    if operator is None:
        record_event(
            session,
            ticket,
            "on_call_taken",
            f"{by} (on call) has the emergency; no operator has that phone, so nobody is assigned",
            actor=by,
            number=number,
        )
        return True
    assigned = rowcount(
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.assignee_id.is_(None))
            .values(assignee_id=operator.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if assigned:
        session.refresh(ticket, ["assignee_id"])
        record_event(
            session,
            ticket,
            "assigned",
            operator.email,
            actor=by,
            assignee=operator.email,
            reason=f"on call, answered the emergency ({how})",
        )
    else:
        record_event(
            session,
            ticket,
            "on_call_taken",
            f"{operator.name} ({by}, on call) has the emergency; the ticket keeps its assignee",
            actor=by,
            number=number,
            operator=operator.email,
        )
    return True
