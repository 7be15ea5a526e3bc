"""The SLA sweep: run every minute by the worker's housekeeper; safe to run twice or concurrently."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from intake import clock
from intake.db import rowcount
from intake.models import Outbox, Ticket
from intake.sla import LEVEL_DEPARTMENTS, LEVEL_NAMES, sla_actions
from intake.tickets import enqueue_after_commit, record_event
from worker.context import config, sessions


def sla_sweep(now: str | None = None) -> str:
    """Warn before a breach and escalate on it, each written to the timeline and notified once."""
    moment = datetime.fromisoformat(now) if now else clock.now()
    cfg = config()
    warned = escalated = 0
    with sessions()() as session:
        actions = sla_actions(session, moment, cfg)
        warn_keys = [
            f"sla-warning:{a.ticket_id}:{a.target}" for a in actions if a.kind == "warning"
        ]
        already = (
            set(session.scalars(select(Outbox.dedupe_key).where(Outbox.dedupe_key.in_(warn_keys))))
            if warn_keys
            else set()
        )
        for action in actions:
            ticket = session.get(Ticket, action.ticket_id)
            assert ticket is not None
            due_local = action.due_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
            label = action.target.replace("_", " ")
            if action.kind == "warning":
                key = f"sla-warning:{ticket.id}:{action.target}"
                if key in already:
                    continue
                record_event(
                    session,
                    ticket,
                    "sla_warning",
                    f"{label} due {due_local}",
                    actor="sla",
                    target=action.target,
                )
                enqueue_after_commit(
                    session,
                    "notify_department",
                    queue="urgent",
                    dedupe_key=key,
                    ticket_id=ticket.id,
                    reason="sla_warning",
                    key=action.target,
                )
                warned += 1
                continue
            moved = rowcount(
                session.execute(
                    update(Ticket)
                    .where(Ticket.id == ticket.id, Ticket.escalation_level < action.level)
                    .values(escalated=True, escalation_level=action.level)
                    .execution_options(synchronize_session=False)
                )
            )
            if not moved:
                continue
            record_event(
                session,
                ticket,
                "escalated",
                f"{label} target {due_local} missed: escalated to the {LEVEL_NAMES[action.level]}",
                actor="sla",
                level=action.level,
                target=action.target,
            )
            enqueue_after_commit(
                session,
                "notify_department",
                queue="urgent",
                dedupe_key=f"escalated:{ticket.id}:{action.level}",
                ticket_id=ticket.id,
                reason="escalated",
                department=LEVEL_DEPARTMENTS[action.level],
                key=f"level{action.level}",
            )
            escalated += 1
        session.commit()
    return f"{warned} warned, {escalated} escalated"
