"""An operator's (or API client's) email reply: threaded to the resident's last message, queued once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from intake.lifecycle import start_work
from intake.models import OutgoingMessage, Ticket, utcnow
from intake.tickets import enqueue_after_commit, record_event


def queue_reply(
    session: Session,
    ticket: Ticket,
    *,
    to: str,
    subject: str,
    body: str,
    actor: str,
    headers: dict[str, Any],
    template: str | None = None,
) -> OutgoingMessage:
    """The reply row, its `send_email` job, the timeline event and the first-response mark."""
    last_inbound = next(
        (
            i
            for i in reversed(ticket.interactions)
            if i.channel == "email" and i.direction == "in" and i.external_id
        ),
        None,
    )
    references = (last_inbound.meta or {}).get("references", []) if last_inbound else []
    message = OutgoingMessage(
        ticket_id=ticket.id,
        channel="email",
        to=to,
        subject=subject[:500],
        body_text=body,
        in_reply_to=last_inbound.external_id if last_inbound else None,
        references=" ".join([*references, last_inbound.external_id or ""]).strip()
        if last_inbound
        else None,
        template=template,
        headers=headers,
        status="queued",
        created_at=utcnow(),
    )
    session.add(message)
    session.flush()
    message.dedupe_key = f"send:{message.id}"
    enqueue_after_commit(
        session, "send_email", dedupe_key=f"send:{message.id}", outgoing_id=message.id
    )
    record_event(
        session, ticket, "reply_queued", f"reply to {to}", actor=actor, outgoing_id=message.id
    )
    if ticket.first_responded_at is None:
        ticket.first_responded_at = utcnow()
    start_work(session, ticket, actor=actor)
    return message
