"""Periodic work every worker's housekeeper does; outbox dedupe keys make each run happen once.

- `sla_sweep` every minute, `chase_silent_calls` every five minutes, the department digest every
  hour;
- callback timers: a scheduled callback that is overdue and has no live timer gets a new one (the
  row is the truth, so a timer lost with Redis or with a failed outbox row is put back).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.models import Callback, Outbox, utcnow

TIMER_GRACE = timedelta(seconds=60)


def _insert_once(sessions: sessionmaker[Session], row: Outbox) -> bool:
    with sessions() as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True


def schedule_periodic(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    now = now or utcnow()
    plans = [
        ("sla_sweep", "urgent", f"periodic:sla_sweep:{now:%Y%m%d%H%M}"),
        ("chase_silent_calls", "default", f"periodic:chase:{now:%Y%m%d%H}{now.minute // 5:02d}"),
        ("send_department_digests", "low", f"periodic:digest:{now:%Y%m%d%H}"),
    ]
    created = 0
    for job, queue, key in plans:
        row = Outbox(
            job=job,
            args={},
            queue=queue,
            dedupe_key=key,
            status="pending",
            available_at=now,
            created_at=now,
        )
        created += _insert_once(sessions, row)
    return created


def restore_callback_timers(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    now = now or utcnow()
    with sessions() as session:
        overdue = list(
            session.scalars(
                select(Callback.id).where(
                    Callback.status == "scheduled", Callback.due_at <= now - TIMER_GRACE
                )
            )
        )
        if not overdue:
            return 0
        live: set[int] = set()
        for key in session.scalars(
            select(Outbox.dedupe_key).where(
                Outbox.job == "place_callback",
                Outbox.status.in_(("pending", "enqueued")),
            )
        ):
            parts = (key or "").split(":")
            if len(parts) > 1 and parts[1].isdigit():
                live.add(int(parts[1]))
    restored = 0
    for callback_id in overdue:
        if callback_id in live:
            continue
        row = Outbox(
            job="place_callback",
            args={"callback_id": callback_id},
            queue="urgent",
            dedupe_key=f"callback:{callback_id}:restored:{int(now.timestamp())}",
            status="pending",
            available_at=now,
            created_at=now,
        )
        restored += _insert_once(sessions, row)
    return restored
