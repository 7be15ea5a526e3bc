"""RQ jobs: module-level functions that take ids, never ORM objects, and may safely run twice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, union_all, update

from intake.db import get_engine, reader, session_scope
from intake.lifecycle import routed_jobs
from intake.models import Department, Event, Outbox, Ticket, utcnow
from intake.routing import decide, sla_due_times, ticket_facts, ticket_facts_query
from intake.tickets import INSERT_EVENTS, INSERT_JOBS, department_by_code, event_row, job_row
from worker.context import config, settings

log = logging.getLogger(__name__)


# Runs once per ticket: built once, with the claim's condition (still new, no department, and
# the department's row present, so the subquery never sets NULL).
_DEPARTMENT_ID = (
    select(Department.id).where(Department.code == bindparam("department")).scalar_subquery()
)
_FACTS = ticket_facts_query().where(Ticket.id == bindparam("ticket"))
_ROUTE = (
    update(Ticket)
    .where(
        Ticket.id == bindparam("ticket"),
        Ticket.status == "new",
        Ticket.department_id.is_(None),
        _DEPARTMENT_ID.is_not(None),
    )
    .values(
        status="routed",
        department_id=_DEPARTMENT_ID,
        priority=bindparam("priority"),
        sla_profile=bindparam("sla_profile"),
        first_response_due_at=bindparam("first_due"),
        resolution_due_at=bindparam("resolution_due"),
        sla_next_at=None,
        updated_at=bindparam("now"),
    )
    .returning(Ticket.id)
)


def _after(
    claimed: Any, model: type[Event | Outbox], prefixes: Iterable[str], columns: Iterable[str]
) -> Any:
    """An INSERT of one row of `model` per prefix that happens only if the claim did (PostgreSQL
    CTE); each row's values are the parameters named `<prefix><column>`."""
    columns = list(columns)
    table = model.__table__
    rows = [
        select(
            *[bindparam(prefix + name, type_=table.c[name].type) for name in columns]
        ).select_from(claimed)
        for prefix in prefixes
    ]
    source = rows[0] if len(rows) == 1 else union_all(*rows).subquery()
    return insert(model).from_select(columns, source)


def _route_and_record() -> Any:
    """Claim, event and notification job as one statement: on a connection without a
    transaction it is its own atomic transaction, one round trip where there were five."""
    claimed = _ROUTE.cte("claimed")
    event = _after(claimed, Event, ["event_"], event_row(0, "", "").keys())
    jobs = _after(claimed, Outbox, ["job_", "reply_"], job_row("").keys())
    return select(claimed.c.id).add_cte(event.cte("routed_event"), jobs.cte("routed_jobs"))


_ROUTE_AND_RECORD = _route_and_record()


def route_ticket(ticket_id: int) -> str:
    """Apply the routing rules once. The conditional claim makes a second run a no-op."""
    cfg = config()
    url = settings().database_url
    with reader(url).connect() as connection:
        row = connection.execute(_FACTS, {"ticket": ticket_id}).first()
        if row is None:
            return "no such ticket"
        if row.status != "new" or row.department_id is not None:
            return "already routed"
        decision = decide(ticket_facts(row), cfg)
        first_due, resolution_due = sla_due_times(row.created_at, decision.sla_profile, cfg)
        now = utcnow()
        claim = {
            "ticket": ticket_id,
            "department": decision.department,
            "priority": decision.priority,
            "sla_profile": decision.sla_profile,
            "first_due": first_due,
            "resolution_due": resolution_due,
            "now": now,
        }
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
            matched=[list(m) for m in decision.matched],
            notify=list(decision.notify),
        )
        jobs = routed_jobs(ticket_id, decision.priority, now)
        routed = _claim(url, connection, claim, event, jobs)
        if not routed and _department_missing(connection, decision.department):
            with session_scope(url) as session:  # a configured department's first ticket
                department_by_code(session, decision.department, cfg)
            routed = _claim(url, connection, claim, event, jobs)
    if not routed:
        return "already routed"
    return f"routed to {decision.department} by {decision.rule}"


def _claim(
    url: str,
    connection: Connection,
    claim: dict[str, Any],
    event: dict[str, Any],
    jobs: list[dict[str, Any]],
) -> bool:
    """The claim with what routing owes (`intake.lifecycle.routed_jobs`: the department's
    notification, the resident's message), all or nothing."""
    if connection.dialect.name == "postgresql":  # `connection` runs without a transaction
        notify, reply = jobs
        params = {
            **claim,
            **_prefixed("event_", event),
            **_prefixed("job_", notify),
            **_prefixed("reply_", reply),
        }
        return connection.execute(_ROUTE_AND_RECORD, params).first() is not None
    connection.rollback()  # SQLite has no INSERT in a CTE: end the read, take the write lock
    with get_engine(url).begin() as writing:
        if writing.execute(_ROUTE, claim).first() is None:
            return False
        writing.execute(INSERT_EVENTS, event)
        writing.execute(INSERT_JOBS, jobs)
    return True


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in row.items()}


def _department_missing(connection: Connection, code: str) -> bool:
    found = connection.execute(select(_DEPARTMENT_ID), {"department": code}).scalar()
    connection.rollback()
    return found is None


def _registry() -> dict[str, Callable[..., Any]]:
    from mail.outgoing import send_email
    from mail.store import process_raw_message
    from voice.recordings import fetch_recording
    from worker.alerts import check_alerts
    from worker.callbacks import (
        callback_call_ended,
        chase_silent_calls,
        place_callback,
        place_callbacks,
    )
    from worker.desk import (
        desk_attach_recordings,
        desk_bridge_caller,
        desk_cancel_offer,
        desk_dial_transfer,
        desk_hangup_caller,
        desk_hold_caller,
        desk_leave_call,
        desk_ring_operator,
        desk_stop_transfer,
        desk_transfer_caller,
        desk_transfer_timeout,
    )
    from worker.lifecycle import close_if_quiet
    from worker.notices import alert_incident_suggestions, send_incident_notices
    from worker.notify import notify_department, page_escalate, page_step, send_department_digests
    from worker.replies import acknowledge
    from worker.reports import refresh_report_days
    from worker.retention import retention_sweep
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
        "close_if_quiet": close_if_quiet,
        "fetch_recording": fetch_recording,
        "send_email": send_email,
        "process_raw_message": process_raw_message,
        "send_incident_notices": send_incident_notices,
        "alert_incident_suggestions": alert_incident_suggestions,
        "desk_ring_operator": desk_ring_operator,
        "desk_bridge_caller": desk_bridge_caller,
        "desk_cancel_offer": desk_cancel_offer,
        "desk_transfer_timeout": desk_transfer_timeout,
        "desk_transfer_caller": desk_transfer_caller,
        "desk_dial_transfer": desk_dial_transfer,
        "desk_hold_caller": desk_hold_caller,
        "desk_hangup_caller": desk_hangup_caller,
        "desk_stop_transfer": desk_stop_transfer,
        "desk_leave_call": desk_leave_call,
        "desk_attach_recordings": desk_attach_recordings,
        "retention_sweep": retention_sweep,
        "check_alerts": check_alerts,
        "refresh_report_days": refresh_report_days,
    }


JOBS: dict[str, Callable[..., Any]] = _registry()

# Jobs the relay may send together: rows of `job` whose only argument is `arg` go as one
# `batch_job(<arg>s=[...])`.
BATCH_FORMS: dict[str, tuple[str, str]] = {"place_callback": ("place_callbacks", "callback_id")}
