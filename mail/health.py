"""Channel health rows: each mail channel says what it last did, so a silent failure is visible.

A poller whose login keeps failing, a mailbox that has been quiet for too long, or an acknowledgement
breaker that tripped writes its state here (and logs it); nothing ever switches itself off.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.models import ChannelHealth, utcnow

log = logging.getLogger(__name__)


def _row(session: Session, name: str) -> ChannelHealth:
    row = session.scalar(select(ChannelHealth).where(ChannelHealth.name == name))
    if row is None:
        row = ChannelHealth(name=name, status="unknown", detail={}, updated_at=utcnow())
        session.add(row)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            row = session.scalars(select(ChannelHealth).where(ChannelHealth.name == name)).one()
    return row


def set_health(
    session: Session,
    name: str,
    status: str,
    *,
    error: str | None = None,
    now: datetime | None = None,
    **detail: Any,
) -> ChannelHealth:
    """Record `status` for channel `name` in the caller's transaction."""
    now = now or utcnow()
    row = _row(session, name)
    if error is None:
        row.last_ok_at = now
        row.consecutive_failures = 0
    else:
        row.last_error_at = now
        row.last_error = error[:2000]
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
    row.status = status
    row.detail = {**(row.detail or {}), **detail}
    row.updated_at = now
    return row


def report(
    sessions: sessionmaker[Session],
    name: str,
    status: str,
    *,
    error: str | None = None,
    **detail: Any,
) -> int:
    """Record a status in its own transaction; returns consecutive failures. Never raises:
    health reporting must not take down the channel it reports on (the log still says it)."""
    try:
        with sessions() as session:
            row = set_health(session, name, status, error=error, **detail)
            failures = row.consecutive_failures
            session.commit()
            return failures
    except SQLAlchemyError as exc:
        log.error("could not record health of %s (%s): %s", name, status, exc)
        return -1
