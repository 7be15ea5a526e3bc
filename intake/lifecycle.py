"""Resolving, reopening and following up a ticket (回訪, 滿意度): what the console, the API and the voice
flow call, so every surface does the same thing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from intake.callbacks import schedule_callback
from intake.config import HotlineConfig
from intake.models import Callback, Ticket, utcnow
from intake.tickets import change_status, enqueue_after_commit, record_event

FOLLOW_UP_ANSWERS = ("fixed", "not_fixed", "1", "2", "3", "4", "5")


def resolve_ticket(
    session: Session,
    ticket: Ticket,
    note: str,
    actor: str,
    config: HotlineConfig,
    *,
    now: datetime | None = None,
) -> Callback | None:
    """Mark a ticket resolved, tell the resident, and owe them a follow-up in the next allowed window."""
    now = now or utcnow()
    if not change_status(
        session, ticket, "resolved", actor=actor, note=note or "resolved", now=now
    ):
        return None
    ticket.resolution_note = note
    enqueue_after_commit(
        session,
        "send_scripted_reply",
        dedupe_key=f"reply:resolved:{ticket.id}:{int(now.timestamp())}",
        ticket_id=ticket.id,
        event="resolved",
        key=f"{int(now.timestamp())}",
        now=now,
    )
    if not (ticket.contact_phone or ticket.contact_email):
        return None
    delay = timedelta(hours=float(config.callbacks.get("follow_up_delay_hours", 24)))
    return schedule_callback(
        session,
        ticket,
        phone=ticket.contact_phone,
        email=None if ticket.contact_phone else ticket.contact_email,
        purpose="follow_up",
        config=config,
        now=now,
        not_before=now + delay,
        actor=actor,
    )


def reopen_not_fixed(session: Session, ticket: Ticket, actor: str, *, note: str = "") -> bool:
    """The resident says it is not fixed: back to the same department, which is told at once."""
    if ticket.status not in ("resolved", "closed"):
        return False
    change_status(
        session,
        ticket,
        "routed" if ticket.department_id else "new",
        actor=actor,
        note=note or "resident says it is not fixed",
    )
    record_event(session, ticket, "reopened", note or "not fixed", actor=actor, reason="not_fixed")
    enqueue_after_commit(
        session,
        "notify_department",
        queue="urgent",
        dedupe_key=f"notify:not_fixed:{ticket.id}:{int(utcnow().timestamp())}",
        ticket_id=ticket.id,
        reason="not_fixed",
    )
    return True


def record_follow_up_answer(session: Session, callback: Callback, answer: str, actor: str) -> str:
    """One answer to the follow-up questions, by key press or by a link in an email."""
    ticket = callback.ticket
    if answer not in FOLLOW_UP_ANSWERS:
        raise ValueError(f"unknown answer {answer!r}")
    if answer == "not_fixed":
        reopen_not_fixed(session, ticket, actor)
        return "reopened"
    if answer == "fixed":
        record_event(
            session, ticket, "follow_up_confirmed", "resident confirms it is fixed", actor=actor
        )
        if ticket.status == "resolved":
            change_status(
                session, ticket, "closed", actor=actor, note="confirmed fixed by resident"
            )
        return "confirmed"
    ticket.satisfaction = int(answer)
    record_event(
        session,
        ticket,
        "survey_answered",
        f"satisfaction {answer}/5",
        actor=actor,
        score=int(answer),
    )
    return "scored"


def _mac(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def follow_up_token(secret: str, callback_id: int, answer: str) -> str:
    """A link token that can only say `answer` about `callback_id` (no login needed, cannot be forged)."""
    payload = f"{callback_id}.{answer}"
    return f"{payload}.{_mac(secret, payload)}"


def read_follow_up_token(secret: str, token: str) -> tuple[int, str] | None:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in FOLLOW_UP_ANSWERS:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(secret, payload), parts[2]):
        return None
    return int(parts[0]), parts[1]
