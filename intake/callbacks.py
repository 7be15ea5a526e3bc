"""Callbacks owed to residents: first-class rows whose due time respects business hours,
public holidays and quiet hours. The row is the truth; the worker's timer only wakes it up."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.calendar import in_quiet_hours, next_opening
from intake.config import HotlineConfig
from intake.models import Callback, Resident, Ticket, utcnow
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
CALLBACK_STATUSES = (*OPEN_CALLBACK_STATUSES, "needs_operator", "done", "failed", "cancelled")


OUTCOMES = ("reached", "no_answer", "busy", "voicemail_left", "wrong_number", "failed")
PREFERRED_SPANS = {
    "morning": (time(9, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(18, 0)),
    "evening": (time(18, 0), time(21, 0)),
}
_SPAN = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


def preferred_span(text: str | None) -> tuple[time, time] | None:
    """A resident's preferred contact time: "morning", "afternoon", "evening" or "HH:MM-HH:MM"."""
    if not text:
        return None
    named = PREFERRED_SPANS.get(text.strip().lower())
    if named:
        return named
    m = _SPAN.match(text)
    if m is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = time(h1, m1), time(h2, m2)
    return (start, end) if start < end else None


def _in_span(moment: datetime, span: tuple[time, time], config: HotlineConfig) -> bool:
    t = moment.astimezone(config.timezone).time()
    return span[0] <= t < span[1]


def next_allowed_time(
    moment: datetime, config: HotlineConfig, preferred: tuple[time, time] | None = None
) -> datetime:
    """The first moment at or after `moment` inside business hours, outside quiet hours and, when
    the resident has one that ever overlaps opening hours, inside their preferred contact time."""
    candidate = next_opening(moment, config)
    fallback: datetime | None = None
    for _ in range(400):
        if not in_quiet_hours(candidate, config):
            if preferred is None or _in_span(candidate, preferred, config):
                return candidate
            fallback = fallback or candidate
            local = candidate.astimezone(config.timezone)
            start_today = datetime.combine(local.date(), preferred[0], config.timezone)
            step_to = start_today if local < start_today else start_today + timedelta(days=1)
            candidate = next_opening(step_to, config)
            continue
        candidate = next_opening(candidate + timedelta(minutes=15), config)
    return fallback or candidate


def callback_preferred_span(session: Session, ticket: Ticket) -> tuple[time, time] | None:
    if ticket.resident_id is None:
        return None
    resident = session.get(Resident, ticket.resident_id)
    return preferred_span(resident.preferred_contact_time if resident else None)


def retry_due_time(
    session: Session, callback: Callback, now: datetime, config: HotlineConfig
) -> datetime:
    """When the next attempt of `callback` may be dialled: spaced by the policy, never at night."""
    spacing = config.callbacks.retry_spacing_minutes
    ticket = session.get(Ticket, callback.ticket_id)
    preferred = callback_preferred_span(session, ticket) if ticket else None
    return next_allowed_time(now + timedelta(minutes=spacing), config, preferred)


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
        window = timedelta(minutes=config.callbacks.missed_call_window_minutes)
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
                now=now,
                callback_id=existing.id,
            )
            return existing
    due = next_allowed_time(
        max(now, not_before or now), config, callback_preferred_span(session, ticket)
    )
    callback = Callback(
        ticket_id=ticket.id,
        phone=phone,
        email=email,
        purpose=purpose,
        status="scheduled",
        due_at=due,
        queued_at=queued_at,
        max_attempts=config.callbacks.max_attempts,
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
        now=now,
        callback_id=callback.id,
        purpose=purpose,
    )
    enqueue_after_commit(
        session,
        "place_callback",
        queue="urgent",  # a promised time: ahead of routine work such as a burst of routing
        dedupe_key=f"callback:{callback.id}:1",
        available_at=due,
        now=now,
        callback_id=callback.id,
    )
    return callback
