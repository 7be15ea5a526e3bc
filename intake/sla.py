"""Which tickets are about to miss, or have missed, their SLA targets at a given moment.

Targets are the ticket's first_response_due_at and resolution_due_at (counted in business time by
`intake.routing.sla_due_times`). A warning comes when a configurable share of the time is left
(`sla.warn_before_fraction`, default 0.2, at least 5 minutes); a breach escalates to the supervisor
(level 1), and to the project manager (level 2) when the resolution target is missed too or the
ticket is still open `sla.manager_after_minutes` (default 60) after level 1.

The sweep reads only tickets whose `sla_next_at` has come (or is unset): the next warning, due time
or manager escalation it computed last time. Changing a due time, an answer, a resolution or the
status clears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from intake.config import HotlineConfig
from intake.constants import OPEN_STATUSES
from intake.models import Event, Ticket

# A ticket due within this window shows as at risk in the console's queue and clocks.
AT_RISK_WINDOW = timedelta(hours=2)
LEVEL_NAMES = {1: "supervisor", 2: "project manager"}
NEVER = datetime(9000, 1, 1, tzinfo=UTC)
LEVEL_DEPARTMENTS = {1: "customer_service", 2: "management"}


@dataclass(frozen=True)
class SlaAction:
    ticket_id: int
    kind: str  # "warning" or "escalate"
    target: str  # "first_response" or "resolution"
    due_at: datetime
    level: int = 0


def _targets(ticket: Ticket) -> list[tuple[str, datetime]]:
    found = []
    if ticket.first_response_due_at is not None and ticket.first_responded_at is None:
        found.append(("first_response", ticket.first_response_due_at))
    if ticket.resolution_due_at is not None and ticket.resolved_at is None:
        found.append(("resolution", ticket.resolution_due_at))
    return found


def _level_one_at(session: Session, ticket_id: int) -> datetime | None:
    return session.scalar(
        select(Event.created_at)
        .where(Event.ticket_id == ticket_id, Event.kind == "escalated")
        .order_by(Event.id)
        .limit(1)
    )


def _due_now(now: datetime) -> Any:
    """Open tickets with a running SLA clock whose next deadline has come (an indexed scan)."""
    return (
        select(Ticket)
        .where(
            or_(Ticket.sla_next_at.is_(None), Ticket.sla_next_at <= now),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.escalation_level < 2,
            or_(Ticket.first_response_due_at.is_not(None), Ticket.resolution_due_at.is_not(None)),
        )
        .order_by(Ticket.id)
    )


def sla_actions(session: Session, now: datetime, config: HotlineConfig) -> list[SlaAction]:
    """What is due at `now`; each ticket looked at also gets the moment it next needs a look
    (`sla_next_at`, committed by the caller), so a sweep with nothing due reads nothing."""
    fraction = config.sla.warn_before_fraction
    manager_after = timedelta(minutes=config.sla.manager_after_minutes)
    actions: list[SlaAction] = []
    for ticket in session.scalars(_due_now(now)):
        later: list[datetime] = []
        targets = _targets(ticket)
        breached = [(t, due) for t, due in targets if now >= due]
        if breached:
            target, due = breached[-1]
            if ticket.escalation_level == 0:
                actions.append(SlaAction(ticket.id, "escalate", target, due, 1))
                later.append(now + manager_after if target == "first_response" else now)
            elif target == "resolution":
                actions.append(SlaAction(ticket.id, "escalate", target, due, 2))
            else:
                first = _level_one_at(session, ticket.id)
                if first is not None and now >= first + manager_after:
                    actions.append(SlaAction(ticket.id, "escalate", target, due, 2))
                else:
                    later.append((first or now) + manager_after)
            later += [d for _t, d in targets if d > now]
        else:
            for target, due in targets:
                span = due - ticket.created_at
                lead = max(timedelta(minutes=5), span * fraction)
                if now >= due - lead:
                    actions.append(SlaAction(ticket.id, "warning", target, due))
                    later.append(due)
                else:
                    later.append(due - lead)
        # Nothing left to watch: looked at again only when a due time, an answer or the status
        # changes (the ticket's attribute events clear sla_next_at).
        ticket.sla_next_at = min(later) if later else NEVER
    return actions


# --- what the console shows: a ticket's SLA state at a moment ------------------------------


class SlaFields(Protocol):
    """The ticket columns a ticket's SLA state is read from."""

    status: str
    first_responded_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None


def sla_state(ticket: SlaFields, now: datetime) -> str:
    """`breached`, `at_risk` or `ok` for the queue's colour and the ticket's clocks."""
    return sla_of(
        ticket.status,
        ticket.first_responded_at,
        ticket.first_response_due_at,
        ticket.resolution_due_at,
        now,
    )


def sla_of(
    status: str,
    first_responded_at: datetime | None,
    first_response_due_at: datetime | None,
    resolution_due_at: datetime | None,
    now: datetime,
) -> str:
    """`sla_state` from the columns themselves (the queue reads them without loading tickets)."""
    if status in ("resolved", "closed"):
        return "ok"
    dues = [resolution_due_at]
    if first_responded_at is None:
        dues.append(first_response_due_at)
    soonest = min((d for d in dues if d is not None), default=None)
    if soonest is None or soonest >= now + AT_RISK_WINDOW:
        return "ok"
    return "breached" if soonest < now else "at_risk"
