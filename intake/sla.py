"""Which tickets are about to miss, or have missed, their SLA targets at a given moment.

Targets are the ticket's first_response_due_at and resolution_due_at (counted in business time by
`intake.routing.sla_due_times`). A warning comes when a configurable share of the time is left
(`sla.warn_before_fraction`, default 0.2, at least 5 minutes); a breach escalates to the supervisor
(level 1), and to the project manager (level 2) when the resolution target is missed too or the
ticket is still open `sla.manager_after_minutes` (default 60) after level 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from intake.config import HotlineConfig
from intake.models import Event, Ticket
from intake.tickets import OPEN_STATUSES

LEVEL_NAMES = {1: "supervisor", 2: "project manager"}
LEVEL_DEPARTMENTS = {1: "customer_service", 2: "management"}


@dataclass(frozen=True)
class SlaAction:
    ticket_id: int
    kind: str  # "warning" or "escalate"
    target: str  # "first_response" or "resolution"
    due_at: datetime
    level: int = 0


def sla_settings(config: HotlineConfig) -> tuple[float, timedelta]:
    raw = dict(config.raw.get("sla") or {})
    return float(raw.get("warn_before_fraction", 0.2)), timedelta(
        minutes=float(raw.get("manager_after_minutes", 60))
    )


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


def sla_actions(session: Session, now: datetime, config: HotlineConfig) -> list[SlaAction]:
    fraction, manager_after = sla_settings(config)
    tickets = session.scalars(
        select(Ticket)
        .where(
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.escalation_level < 2,
            or_(Ticket.first_response_due_at.is_not(None), Ticket.resolution_due_at.is_not(None)),
        )
        .order_by(Ticket.id)
    )
    actions: list[SlaAction] = []
    for ticket in tickets:
        breached = [(t, due) for t, due in _targets(ticket) if now >= due]
        if breached:
            target, due = breached[-1]
            if ticket.escalation_level == 0:
                actions.append(SlaAction(ticket.id, "escalate", target, due, 1))
            elif target == "resolution":
                actions.append(SlaAction(ticket.id, "escalate", target, due, 2))
            else:
                first = _level_one_at(session, ticket.id)
                if first is not None and now >= first + manager_after:
                    actions.append(SlaAction(ticket.id, "escalate", target, due, 2))
            continue
        for target, due in _targets(ticket):
            span = due - ticket.created_at
            lead = max(timedelta(minutes=5), span * fraction)
            if now >= due - lead:
                actions.append(SlaAction(ticket.id, "warning", target, due))
    return actions
