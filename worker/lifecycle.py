"""Jobs the ticket lifecycle owes later (`intake.lifecycle`), run when their moment comes."""

from __future__ import annotations

from datetime import datetime

from intake import lifecycle
from intake.models import Ticket
from worker.context import sessions


def close_if_quiet(ticket_id: int, resolved_at: str) -> str:
    """The quiet period after a resolution is over: close it unless it was reopened since."""
    with sessions()() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return "no such ticket"
        if not lifecycle.close_if_quiet(session, ticket, datetime.fromisoformat(resolved_at)):
            return f"{ticket.ref} left as {ticket.status}"
        session.commit()
        return f"{ticket.ref} closed"
