"""RQ jobs: module-level functions that take ids, never ORM objects, and may safely run twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select, update

from intake.db import reader
from intake.models import Department, Ticket, utcnow
from intake.routing import decide, sla_due_times, ticket_facts, ticket_facts_query
from intake.tickets import INSERT_EVENTS, INSERT_JOBS, department_by_code, event_row, job_row
from worker.context import config, sessions, settings

log = logging.getLogger(__name__)


# Runs once per ticket: built once, with the claim's condition (still new, no department).
_ROUTE = (
    update(Ticket)
    .where(Ticket.id == bindparam("ticket"), Ticket.status == "new", Ticket.department_id.is_(None))
    .values(
        status="routed",
        department_id=select(Department.id)
        .where(Department.code == bindparam("department"))
        .scalar_subquery(),
        priority=bindparam("priority"),
        sla_profile=bindparam("sla_profile"),
        first_response_due_at=bindparam("first_due"),
        resolution_due_at=bindparam("resolution_due"),
        updated_at=bindparam("now"),
    )
    .returning(Ticket.department_id)
)


def route_ticket(ticket_id: int) -> str:
    """Apply the routing rules once. The conditional UPDATE makes a second run a no-op."""
    cfg = config()
    with reader(settings().database_url).connect() as connection:
        row = connection.execute(ticket_facts_query().where(Ticket.id == ticket_id)).first()
    if row is None:
        return "no such ticket"
    if row.status != "new" or row.department_id is not None:
        return "already routed"
    decision = decide(ticket_facts(row), cfg)
    first_due, resolution_due = sla_due_times(row.created_at, decision.sla_profile, cfg)
    with sessions()() as session:
        values = {
            "department": decision.department,
            "priority": decision.priority,
            "sla_profile": decision.sla_profile,
            "first_due": first_due,
            "resolution_due": resolution_due,
            "now": utcnow(),
        }
        connection = session.connection()
        claimed = connection.execute(_ROUTE, {"ticket": ticket_id, **values}).first()
        if claimed is None:
            session.rollback()
            return "already routed"
        if claimed.department_id is None:  # a configured department without its row yet
            dept = department_by_code(session, decision.department, cfg)
            connection.execute(
                update(Ticket).where(Ticket.id == ticket_id).values(department_id=dept.id)
            )
        event = event_row(
            ticket_id,
            "routed",
            f"to {decision.department}, {decision.priority}: {decision.explain()}",
            actor=f"rule:{decision.rule}",
            rule=decision.rule,
            department=decision.department,
            priority=decision.priority,
            sla_profile=decision.sla_profile,
            reasons=list(decision.reasons),
            notify=list(decision.notify),
        )
        notify = job_row(
            "notify_department",
            queue="urgent" if decision.priority in ("P1", "P2") else "default",
            dedupe_key=f"notify:routed:{ticket_id}",
            ticket_id=ticket_id,
            reason="routed",
        )
        connection.execute(INSERT_EVENTS, event)
        connection.execute(INSERT_JOBS, notify)
        session.commit()
        return f"routed to {decision.department} by {decision.rule}"


def _registry() -> dict[str, Callable[..., Any]]:
    from mail.outgoing import send_email
    from mail.store import process_raw_message
    from voice.recordings import fetch_recording
    from worker.callbacks import (
        callback_call_ended,
        chase_silent_calls,
        place_callback,
        place_callbacks,
    )
    from worker.notify import notify_department, page_escalate, page_step, send_department_digests
    from worker.replies import acknowledge
    from worker.scripted import send_scripted_reply
    from worker.sla import sla_sweep
    from worker.sms import send_sms

    return {
        "route_ticket": route_ticket,
        "acknowledge": acknowledge,
        "notify_department": notify_department,
        "send_department_digests": send_department_digests,
        "page_step": page_step,
        "page_escalate": page_escalate,
        "send_scripted_reply": send_scripted_reply,
        "place_callback": place_callback,
        "place_callbacks": place_callbacks,
        "callback_call_ended": callback_call_ended,
        "chase_silent_calls": chase_silent_calls,
        "sla_sweep": sla_sweep,
        "send_sms": send_sms,
        "fetch_recording": fetch_recording,
        "send_email": send_email,
        "process_raw_message": process_raw_message,
    }


JOBS: dict[str, Callable[..., Any]] = _registry()

# Jobs the relay may send together: rows of `job` whose only argument is `arg` go as one
# `batch_job(<arg>s=[...])`.
BATCH_FORMS: dict[str, tuple[str, str]] = {"place_callback": ("place_callbacks", "callback_id")}
