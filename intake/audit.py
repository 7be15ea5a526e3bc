"""The audit log: who did what, when, from where.

Sign-ins and failures, operator and role changes, API token creation, exports, erasures, retention
runs and admin actions call `record(...)` in the same transaction as the act. Entries are append-only:
the ORM refuses to change or delete one (PostgreSQL's trigger refuses it too); only `purge_before`,
the retention job, removes entries older than their retention.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.db import rowcount
from intake.models import AppendOnly, AuditEntry

__all__ = ["ACTIONS", "AppendOnly", "purge_before", "record"]

ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "operator_created",
    "operator_changed",
    "api_token_created",
    "api_token_revoked",
    "config_changed",
    "report_exported",
    "job_retried",
    "resident_exported",
    "resident_erased",
    "resident_changed",
    "retention_run",
)


class Actor(TypedDict):
    """Who did it, as `record` takes it: `record(session, action, **actor, ...)`."""

    actor: str
    role: str | None
    source: str | None


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    role: str | None = None,
    target: str | None = None,
    source: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Adds an entry to `session` (committed with the act it records)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(
        at=utcnow(),
        actor=actor[:254],
        actor_role=role,
        action=action,
        target=(target or None) and target[:300],
        source=(source or None) and source[:64],
        detail=detail,
    )
    session.add(entry)
    return entry


def purge_before(session: Session, cutoff: datetime) -> int:
    """Removes entries older than `cutoff` (retention); the only deletion allowed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL hotline.audit_purge = 'on'"))
    result = session.execute(
        delete(AuditEntry).where(AuditEntry.at < cutoff),
        execution_options={"audit_purge": True},
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL hotline.audit_purge = 'off'"))
    return rowcount(result)
