"""Scripted replies (標準用語) composed from the per-language templates; each is written once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from intake.models import Interaction, OutgoingMessage, Ticket, utcnow
from intake.phrases import render
from worker.context import config, sessions


def acknowledge(ticket_id: int, interaction_id: int) -> str:
    """Acknowledge a resident's first message in their language, on the channel they used."""
    cfg = config()
    dedupe_key = f"ack:{interaction_id}"
    with sessions()() as session:
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
        language = ticket.language
        dept = (
            ticket.department.name(language)
            if ticket.department
            else cfg.department("customer_service").names[language]
        )  # type: ignore[union-attr]
        received = inbound.created_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
        context = {
            "company": cfg.company(language),
            "ref": ticket.ref,
            "name": ticket.resident.name
            if ticket.resident
            else (inbound.meta or {}).get("sender_name"),
            "received_at": received,
            "department": dept,
        }
        message = OutgoingMessage(
            ticket_id=ticket.id,
            channel="email",
            to=ticket.contact_email,
            subject=render("ack_email_subject", language, **context),
            body_text=render("ack_email_body", language, **context),
            in_reply_to=inbound.external_id,
            template="ack_email",
            dedupe_key=dedupe_key,
            status="queued",
            created_at=utcnow(),
        )
        session.add(message)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "already acknowledged"
        return f"acknowledgement {message.id} queued"
