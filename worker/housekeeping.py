"""Periodic work every worker's housekeeper does; outbox dedupe keys make each run happen once.

- `sla_sweep` and `alert_incident_suggestions` every minute, `chase_silent_calls` and
  `refresh_report_days` (the dashboard's roll-up) every five minutes, the department digest every
  hour, the roll-up's last week once a day;
- callback timers: a scheduled callback that is overdue and has no live timer gets a new one (the
  row is the truth, so a timer lost with Redis or with a failed outbox row is put back);
- stale `sending` rows: an email or SMS whose claim's lease lapsed (its worker was killed mid-send)
  gets a send job again (`mail.outgoing.retry_after_lease`, once per claim), which takes it over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.models import Callback, Outbox, OutgoingMessage, utcnow

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
        ("alert_incident_suggestions", "default", f"periodic:incidents:{now:%Y%m%d%H%M}"),
        ("retention_sweep", "low", f"periodic:retention:{now:%Y%m%d}"),
        ("check_alerts", "default", f"periodic:alerts:{now:%Y%m%d%H%M}"),
        ("refresh_report_days", "low", f"periodic:report_days:{now:%Y%m%d%H}{now.minute // 5:02d}"),
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
    # Once a day the roll-up's last week again, whatever changed (a unit moved building, say).
    nightly = Outbox(
        job="refresh_report_days",
        args={"recent_days": 7},
        queue="low",
        dedupe_key=f"periodic:report_days_nightly:{now:%Y%m%d}",
        status="pending",
        available_at=now,
        created_at=now,
    )
    created += _insert_once(sessions, nightly)
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


def sweep_stale_sending(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    """Queue a send again for every email and SMS left `sending` past its claim's lease."""
    from mail.outgoing import SENDING_LEASE as EMAIL_LEASE
    from mail.outgoing import retry_after_lease
    from worker.sms import SENDING_LEASE as SMS_LEASE

    now = now or utcnow()
    queued = 0
    plans = (
        ("email", EMAIL_LEASE, "send_email", "default"),
        ("sms", SMS_LEASE, "send_sms", "urgent"),
    )
    for channel, lease, job, queue in plans:
        with sessions() as session:
            stale = list(
                session.scalars(
                    select(OutgoingMessage.id).where(
                        OutgoingMessage.channel == channel,
                        OutgoingMessage.status == "sending",
                        or_(
                            OutgoingMessage.sent_at.is_(None),
                            OutgoingMessage.sent_at < now - lease,
                        ),
                    )
                )
            )
            for outgoing_id in stale:
                retry_after_lease(session, outgoing_id, job, lease, queue)
                queued += 1
    return queued
