"""Ticket lifecycle helpers shared by every surface that changes a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.config import HotlineConfig
from intake.db import rowcount
from intake.models import Department, Event, Outbox, Ticket, utcnow


def format_ref(prefix: str, ticket_id: int) -> str:
    return f"{prefix}-{ticket_id:06d}"


# Prebuilt, for code that writes events and jobs without the ORM's unit of work.
INSERT_EVENTS = insert(Event)
INSERT_JOBS = insert(Outbox)


def event_row(
    ticket_id: int,
    kind: str,
    message: str,
    *,
    actor: str = "system",
    now: datetime | None = None,
    **data: Any,
) -> dict[str, Any]:
    """The columns of an `Event`: for `record_event`, and for a batch insert of several."""
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "actor": actor,
        "message": message,
        "data": data,
        "created_at": now or utcnow(),
    }


def record_event(
    session: Session,
    ticket: Ticket | int,
    kind: str,
    message: str,
    *,
    actor: str = "system",
    now: datetime | None = None,
    **data: Any,
) -> Event:
    """A line on the ticket's timeline; the ticket may be given by id when it is not loaded."""
    ticket_id = ticket if isinstance(ticket, int) else ticket.id
    event = Event(**event_row(ticket_id, kind, message, actor=actor, now=now, **data))
    session.add(event)
    return event


def job_row(
    job: str,
    *,
    queue: str = "default",
    dedupe_key: str | None = None,
    available_at: datetime | None = None,
    now: datetime | None = None,
    **args: Any,
) -> dict[str, Any]:
    """The columns of a pending `Outbox` row: for `enqueue_after_commit`, and for a batch insert.
    `now` is the moment of the change that owes the job (default: the clock)."""
    now = now or utcnow()
    return {
        "job": job,
        "args": args,
        "queue": queue,
        "dedupe_key": dedupe_key,
        "status": "pending",
        "available_at": available_at or now,
        "created_at": now,
    }


def enqueue_after_commit(
    session: Session,
    job: str,
    *,
    queue: str = "default",
    dedupe_key: str | None = None,
    available_at: datetime | None = None,
    now: datetime | None = None,
    **args: Any,
) -> Outbox:
    """An outbox row: the relay puts it on RQ only once this transaction has committed."""
    row = Outbox(
        **job_row(
            job, queue=queue, dedupe_key=dedupe_key, available_at=available_at, now=now, **args
        )
    )
    session.add(row)
    return row


def department_by_code(session: Session, code: str, config: HotlineConfig) -> Department:
    """The department row for a configured code, created from the configuration when missing.

    Two workers routing the first tickets of a new department both find it missing: the insert
    runs in a savepoint, and the one that loses the race reads the winner's row."""
    existing = select(Department).where(Department.code == code)
    dept = session.scalar(existing)
    if dept is not None:
        return dept
    conf = config.department(code)
    if conf is None:
        raise ValueError(f"department {code!r} is not in the configuration")
    try:
        with session.begin_nested():
            dept = Department(
                code=code,
                name_zh_hant=conf.names["zh-Hant"],
                name_zh_hans=conf.names["zh-Hans"],
                name_en=conf.names["en"],
                email=conf.email,
            )
            session.add(dept)
    except IntegrityError:
        dept = session.scalars(existing).one()
    return dept


def sync_departments(session: Session, config: HotlineConfig) -> None:
    for conf in config.departments:
        dept = department_by_code(session, conf.code, config)
        dept.name_zh_hant, dept.name_zh_hans, dept.name_en = (
            conf.names["zh-Hant"],
            conf.names["zh-Hans"],
            conf.names["en"],
        )
        dept.email = conf.email


def change_category(session: Session, ticket: Ticket, category: str, *, actor: str) -> bool:
    """Recategorise a ticket (already validated), on the timeline with who did it."""
    if category == ticket.category:
        return False
    record_event(
        session,
        ticket,
        "category_changed",
        f"{ticket.category} → {category}",
        actor=actor,
        previous=ticket.category,
        category=category,
    )
    ticket.category = category
    return True


def change_priority(session: Session, ticket: Ticket, priority: str, *, actor: str) -> bool:
    if priority == ticket.priority:
        return False
    record_event(
        session,
        ticket,
        "priority_changed",
        f"{ticket.priority} → {priority}",
        actor=actor,
        previous=ticket.priority,
        priority=priority,
    )
    ticket.priority = priority
    return True


def change_department(
    session: Session, ticket: Ticket, department: Department | None, *, actor: str
) -> bool:
    """Move a ticket; a new ticket given a department counts as routed by hand."""
    if (department.id if department else None) == ticket.department_id:
        return False
    previous = ticket.department.code if ticket.department else None
    record_event(
        session,
        ticket,
        "department_changed",
        f"{previous or '—'} → {department.code if department else '—'}",
        actor=actor,
        previous=previous,
        department=department.code if department else None,
    )
    ticket.department = department
    return True


def retry_failed(sessions: sessionmaker[Session], row_id: int) -> bool:
    """An operator's retry of a job that failed for good: pending again, its attempts reset (the
    relay queues it); False when the row is not failed."""
    with sessions() as session:
        changed = rowcount(
            session.execute(
                update(Outbox)
                .where(Outbox.id == row_id, Outbox.status == "failed")
                .values(status="pending", attempts=0, available_at=utcnow())
            )
        )
        session.commit()
    return bool(changed)
