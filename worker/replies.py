"""Acknowledgements: a resident's first email answered in their language, within limits.

Only human senders are acknowledged (the core enqueues this job for them only, and it checks again).
Limits keep a mail loop or a flood from turning into a flood of our own (decided one job at a
time, so two workers cannot both pass a limit on the same count): at most
`mail.ack_limit_per_sender_per_hour` acknowledgements to one address per hour, one per sender and
ticket, none to an address that bounced, and a global breaker (`mail.storm_limit_per_minute`) that
stops acknowledging during a storm and says so on the ticket, in ChannelHealth and in the log.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import getaddresses

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.db import serialize_transactions
from intake.models import ContactPoint, Interaction, OutgoingMessage, Ticket, utcnow
from intake.phones import normalize_email, plausible_name
from intake.phrases import render
from intake.tickets import enqueue_after_commit, record_event
from worker.context import config, sessions

log = logging.getLogger(__name__)

ACK_TEMPLATE = "ack_email"
BREAKER_HEALTH = "mail:acknowledgements"


def recipients_of(value: str | None) -> set[str]:
    """The real addresses in an outgoing row's `to` (normally exactly one)."""
    return {a for a in (normalize_email(v) for _, v in getaddresses([value or ""])) if a}


def _recent_acks(session: Session, since_minutes: int, to: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(OutgoingMessage)
        .where(
            OutgoingMessage.template == ACK_TEMPLATE,
            OutgoingMessage.created_at >= utcnow() - timedelta(minutes=since_minutes),
        )
    )
    if to is None:
        return session.scalar(query) or 0
    # every real recipient counts: a row addressed to "victim, other" is one to the victim
    rows = session.scalars(
        query.with_only_columns(OutgoingMessage.to).where(
            func.lower(OutgoingMessage.to).contains(to.partition("@")[0], autoescape=True)
        )
    ).all()
    return sum(1 for row in rows if to in recipients_of(row))


def _suppressed(session: Session, ticket: Ticket, reason: str, message: str) -> str:
    record_event(session, ticket, "ack_suppressed", message, actor="worker", reason=reason)
    session.commit()
    return f"not acknowledged: {message}"


def acknowledge(ticket_id: int, interaction_id: int) -> str:
    """Acknowledge a resident's first message in their language, on the channel they used."""
    from mail.health import set_health

    cfg = config()
    dedupe_key = f"ack:{interaction_id}"
    with sessions()() as session:
        # The limits below count acknowledgements and then add one: decided one at a time.
        serialize_transactions(session, ACK_TEMPLATE)
        if session.scalar(
            select(OutgoingMessage.id).where(OutgoingMessage.dedupe_key == dedupe_key)
        ):
            return "already acknowledged"
        ticket = session.get(Ticket, ticket_id)
        inbound = session.get(Interaction, interaction_id)
        if ticket is None or inbound is None:
            return "nothing to acknowledge"
        if inbound.channel != "email" or not ticket.contact_email:
            return f"no written acknowledgement for {inbound.channel}"
        if (inbound.meta or {}).get("sender_kind", "human") != "human":
            return "not a human sender"
        to = normalize_email(ticket.contact_email)
        if to is None:
            return _suppressed(
                session, ticket, "invalid_address", f"{ticket.contact_email!r} is not one address"
            )
        if session.scalar(
            select(ContactPoint.id).where(
                ContactPoint.kind == "email",
                ContactPoint.value == to,
                ContactPoint.unreachable.is_(True),
            )
        ):
            return _suppressed(session, ticket, "unreachable", f"{to} is marked unreachable")
        if session.scalar(
            select(OutgoingMessage.id).where(
                OutgoingMessage.template == ACK_TEMPLATE,
                OutgoingMessage.ticket_id == ticket.id,
                OutgoingMessage.to == to,
            )
        ):
            return _suppressed(session, ticket, "per_ticket", f"{to} was already acknowledged")
        per_hour = cfg.mail.ack_limit_per_sender_per_hour
        if _recent_acks(session, 60, to) >= per_hour:
            return _suppressed(
                session, ticket, "per_sender", f"{to} had {per_hour} acknowledgements this hour"
            )
        storm = cfg.mail.storm_limit_per_minute
        recent = _recent_acks(session, 1)
        if recent >= storm:
            log.error(
                "acknowledgement breaker open: %d acknowledgements in the last minute (limit %d); "
                "%s not acknowledged",
                recent,
                storm,
                ticket.ref,
            )
            set_health(
                session,
                BREAKER_HEALTH,
                "breaker_open",
                error=f"{recent} acknowledgements in a minute (limit {storm})",
                last_suppressed=ticket.ref,
            )
            return _suppressed(
                session,
                ticket,
                "storm",
                f"mail storm: {recent} acknowledgements in the last minute (limit {storm})",
            )
        language = ticket.language
        dept = (
            ticket.department.name(language)
            if ticket.department
            else cfg.customer_service.names[language]
        )
        received = inbound.created_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
        context = {
            "company": cfg.company(language),
            "ref": ticket.ref,
            # printed after "Dear": only something that looks like a name, never a sender's words
            "name": plausible_name(
                ticket.resident.name if ticket.resident else (inbound.meta or {}).get("sender_name")
            ),
            "received_at": received,
            "department": dept,
            "resolution_due": (
                ticket.resolution_due_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
                if ticket.resolution_due_at and ticket.department
                else ""
            ),
        }
        phrase = "ack"
        if ticket.incident_id is not None:  # one of many about a building-wide incident
            from intake.incidents import incident_context

            phrase = "incident_ack"
            context.update(incident_context(session, ticket.incident_id, language, cfg))
        references = [str(r) for r in (inbound.meta or {}).get("references") or []]
        message = OutgoingMessage(
            ticket_id=ticket.id,
            channel="email",
            to=to,
            subject=render(f"{phrase}_email_subject", language, **context),
            body_text=render(f"{phrase}_email_body", language, **context),
            in_reply_to=inbound.external_id,
            references=" ".join([*references, inbound.external_id or ""]).strip() or None,
            # the department it named: the "routed" message need not say it again
            headers={
                "automatic": True,
                "department": ticket.department.code if ticket.department else None,
            },
            template=ACK_TEMPLATE,
            dedupe_key=dedupe_key,
            status="queued",
            created_at=utcnow(),
        )
        session.add(message)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return "already acknowledged"
        enqueue_after_commit(
            session, "send_email", dedupe_key=f"send:{message.id}", outgoing_id=message.id
        )
        set_health(session, BREAKER_HEALTH, "ok")
        session.commit()
        return f"acknowledgement {message.id} queued"
