"""Scripted replies (標準用語) for each event, channel and language, each sent at most once.

Templates: `intake/templates/<lang>/reply_<event>_email_subject.txt`, `..._email_body.txt` and
`reply_<event>_sms.txt` (the survey uses `survey_...`); what a caller hears on the phone is a
`voice_*` prompt of the call itself. The events are owed by `intake.lifecycle` (and the callback
jobs). An SMS never goes out in quiet hours: it waits for their end. The console lists the same
files as canned replies (`web.phrases.canned_replies`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.calendar import after_quiet_hours
from intake.config import HotlineConfig, Settings
from intake.lifecycle import LINK_ANSWERS, follow_up_token
from intake.models import Callback, ContactPoint, Interaction, OutgoingMessage, Ticket, utcnow
from intake.phones import can_receive_sms
from intake.phrases import render, spoken_ref
from intake.tickets import enqueue_after_commit, record_event
from worker.context import config, sessions, settings
from worker.replies import ACK_TEMPLATE

EVENTS = (
    "received",
    "routed",
    "need_more_info",
    "resolved",
    "callback_scheduled",
    "callback_missed",
    "survey",
)


def template_base(event: str) -> str:
    return "survey" if event == "survey" else f"reply_{event}"


def reply_context(
    session: Session,
    ticket: Ticket,
    cfg: HotlineConfig,
    stg: Settings,
    *,
    note: str = "",
    callback_id: int | None = None,
) -> dict[str, Any]:
    language = ticket.language
    category = cfg.category(ticket.category)
    dept = ticket.department.name(language) if ticket.department else None
    due = ""
    links: dict[str, str] = {}
    if callback_id is not None:
        cb = session.get(Callback, callback_id)
        if cb is not None:
            due = cb.due_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
            base = stg.public_base_url.rstrip("/")
            for answer in LINK_ANSWERS:
                token = follow_up_token(stg.secret_key, cb.id, answer)
                links[answer] = f"{base}/followup/{token}"
    resolution_due = ""
    if ticket.resolution_due_at is not None:
        local = ticket.resolution_due_at.astimezone(cfg.timezone)
        resolution_due = local.strftime("%Y-%m-%d %H:%M")
    return {
        "company": cfg.company(language),
        "resolution_due": resolution_due,
        "ref": ticket.ref,
        "ref_spoken": spoken_ref(ticket.ref or "", language),
        "name": ticket.resident.name if ticket.resident else None,
        "category": category.names.get(language, ticket.category) if category else ticket.category,
        "department": dept or (cfg.customer_service.names[language]),
        "due": due,
        "note": note or ticket.public_note or "",  # never the internal resolution note
        "links": links,
    }


def _resident_email(session: Session, ticket: Ticket) -> str | None:
    if ticket.contact_email or ticket.resident_id is None:
        return ticket.contact_email
    return session.scalar(
        select(ContactPoint.value)
        .where(
            ContactPoint.resident_id == ticket.resident_id,
            ContactPoint.kind == "email",
            ContactPoint.unreachable.is_(False),
        )
        .order_by(ContactPoint.id)
        .limit(1)
    )


def _channel_for(
    session: Session, ticket: Ticket, wanted: str | None, avoid_phone: bool
) -> tuple[str, str] | None:
    """Email when the resident wrote to us (or asked for it), else SMS to a phone that takes
    text messages (not a landline), else any known email."""
    email = _resident_email(session, ticket)
    if wanted == "email" or (wanted is None and ticket.contact_email):
        return ("email", email) if email else None
    if ticket.contact_phone and not avoid_phone and can_receive_sms(ticket.contact_phone):
        return "sms", ticket.contact_phone
    if email:
        return "email", email
    return None


def _last_inbound_email(session: Session, ticket_id: int) -> str | None:
    return session.scalar(
        select(Interaction.external_id)
        .where(
            Interaction.ticket_id == ticket_id,
            Interaction.channel == "email",
            Interaction.direction == "in",
        )
        .order_by(Interaction.id.desc())
        .limit(1)
    )


# Messages no person decided to send, owed as soon as mail arrives: they count against
# `mail.ack_limit_per_sender_per_hour` together with the acknowledgements.
AUTOMATIC_EVENTS = ("received", "routed")


def _over_hourly_limit(session: Session, to: str, cfg: HotlineConfig) -> bool:
    per_hour = cfg.mail.ack_limit_per_sender_per_hour
    templates = [ACK_TEMPLATE, *(f"reply_{event}_email" for event in AUTOMATIC_EVENTS)]
    sent = session.scalar(
        select(func.count())
        .select_from(OutgoingMessage)
        .where(
            OutgoingMessage.to == to,
            OutgoingMessage.template.in_(templates),
            OutgoingMessage.created_at >= utcnow() - timedelta(hours=1),
        )
    )
    return (sent or 0) >= per_hour


def _asked_nothing(session: Session, ticket: Ticket) -> bool:
    """A missed call (or a contact without words): there is nothing to report as dispatched."""
    if not (ticket.description or "").strip():
        return True
    first = session.scalar(
        select(Interaction.kind)
        .where(Interaction.ticket_id == ticket.id)
        .order_by(Interaction.id)
        .limit(1)
    )
    return first == "missed_call"


def _acknowledged_with(session: Session, ticket: Ticket) -> bool:
    """The email acknowledgement went out after routing and named this department."""
    if ticket.department is None:
        return False
    return (
        session.scalar(
            select(OutgoingMessage.id)
            .where(
                OutgoingMessage.ticket_id == ticket.id,
                OutgoingMessage.template == ACK_TEMPLATE,
                OutgoingMessage.headers["department"].as_string() == ticket.department.code,
            )
            .limit(1)
        )
        is not None
    )


def send_scripted_reply(
    ticket_id: int,
    event: str,
    key: str = "",
    channel: str | None = None,
    callback_id: int | None = None,
    avoid_phone: bool = False,
    note: str = "",
) -> str:
    """Write the reply for `event` once (OutgoingMessage.dedupe_key) and hand it to the sender."""
    if event not in EVENTS:
        raise ValueError(f"unknown reply event {event!r}")
    cfg, stg = config(), settings()
    dedupe_key = f"reply:{event}:{ticket_id}:{key}"
    with sessions()() as session:
        if session.scalar(
            select(OutgoingMessage.id).where(OutgoingMessage.dedupe_key == dedupe_key)
        ):
            return "already sent"
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return "no such ticket"
        if event == "routed" and _asked_nothing(session, ticket):
            return "a contact without a request (a missed call): its callback speaks for it"
        target = _channel_for(session, ticket, channel, avoid_phone)
        if target is None:
            return "no way to reach the resident in writing"
        kind, to = target
        if event == "routed" and kind == "email" and _acknowledged_with(session, ticket):
            return "the acknowledgement already named the department"
        if event in AUTOMATIC_EVENTS and kind == "email" and _over_hourly_limit(session, to, cfg):
            record_event(
                session,
                ticket,
                "reply_suppressed",
                f"{event} message to {to} not sent: hourly limit for automatic mail",
                actor="worker",
                reason="per_sender",
            )
            session.commit()
            return "over the hourly limit of automatic mail to this address"
        context = reply_context(session, ticket, cfg, stg, note=note, callback_id=callback_id)
        base = template_base(event)
        language = ticket.language
        message = OutgoingMessage(
            ticket_id=ticket.id,
            channel=kind,
            to=to,
            template=f"{base}_{kind}",
            dedupe_key=dedupe_key,
            status="queued",
            created_at=utcnow(),
        )
        if kind == "email":
            message.subject = render(f"{base}_email_subject", language, **context)
            message.body_text = render(f"{base}_email_body", language, **context)
            message.in_reply_to = _last_inbound_email(session, ticket.id)
        else:
            message.body_text = render(f"{base}_sms", language, **context)
        session.add(message)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return "already sent"
        now = utcnow()
        enqueue_after_commit(
            session,
            "send_email" if kind == "email" else "send_sms",
            dedupe_key=f"send:{message.id}",
            available_at=now if kind == "email" else after_quiet_hours(now, cfg),
            now=now,
            outgoing_id=message.id,
        )
        session.commit()
        return f"{event} {kind} {message.id} queued"
