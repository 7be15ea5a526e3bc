"""Callbacks owed to residents: first-class rows whose due time respects business hours,
public holidays and quiet hours. The row is the truth; the worker's timer only wakes it up."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.calendar import in_quiet_hours, next_opening
from intake.config import HotlineConfig
from intake.models import Callback, Ticket, utcnow
from intake.tickets import enqueue_after_commit, record_event

PURPOSES = (
    "missed_call",
    "virtual_hold",
    "voicemail",
    "after_hours",
    "follow_up",
    "survey",
    "operator_request",
)
OPEN_CALLBACK_STATUSES = ("scheduled", "in_progress")


def next_allowed_time(moment: datetime, config: HotlineConfig) -> datetime:
    """The first moment at or after `moment` inside business hours and outside quiet hours."""
    candidate = next_opening(moment, config)
    for _ in range(48):
        if not in_quiet_hours(candidate, config):
            return candidate
        candidate = next_opening(candidate + timedelta(minutes=30), config)
    return candidate


def schedule_callback(
    session: Session,
    ticket: Ticket,
    *,
    phone: str | None,
    purpose: str,
    config: HotlineConfig,
    now: datetime | None = None,
    queued_at: datetime | None = None,
    email: str | None = None,
    not_before: datetime | None = None,
    actor: str = "system",
) -> Callback:
    """Schedule (or, for repeated missed calls from one number, reuse) a callback for `ticket`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown callback purpose {purpose!r}")
    now = now or utcnow()
    if purpose == "missed_call" and phone:
        window = timedelta(minutes=int(config.callbacks.get("missed_call_window_minutes", 120)))
        existing = session.scalar(
            select(Callback)
            .where(
                Callback.phone == phone,
                Callback.purpose == "missed_call",
                Callback.status.in_(OPEN_CALLBACK_STATUSES),
                Callback.created_at >= now - window,
            )
            .order_by(Callback.id)
            .limit(1)
        )
        if existing is not None:
            record_event(
                session,
                ticket,
                "callback_reused",
                f"another missed call from {phone}; callback {existing.id} already owed",
                actor=actor,
                callback_id=existing.id,
            )
            return existing
    due = next_allowed_time(max(now, not_before or now), config)
    callback = Callback(
        ticket_id=ticket.id,
        phone=phone,
        email=email,
        purpose=purpose,
        status="scheduled",
        due_at=due,
        queued_at=queued_at,
        max_attempts=int(config.callbacks.get("max_attempts", 3)),
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    session.flush()
    local_due = due.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M")
    record_event(
        session,
        ticket,
        "callback_scheduled",
        f"{purpose} callback due {local_due}",
        actor=actor,
        callback_id=callback.id,
        purpose=purpose,
    )
    enqueue_after_commit(
        session,
        "place_callback",
        dedupe_key=f"callback:{callback.id}:1",
        available_at=due,
        callback_id=callback.id,
    )
    return callback
