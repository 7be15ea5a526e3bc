"""The intake entry point: turn an `InboundContact` into a ticket, or an interaction on one.

One transaction holds the ticket, its first interaction, its events and its outbox rows.
Idempotent by (channel, external_id): the unique constraint on `interaction` decides races, so the
same contact from two processes at once still yields one ticket and one interaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Row, bindparam, insert, literal, select, union_all, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from intake.classify import Classification, classify
from intake.config import HotlineConfig
from intake.constants import HAND_ENTERED_CHANNELS, OPEN_STATUSES
from intake.contact import InboundContact
from intake.incidents import link_at_intake
from intake.lifecycle import resident_wrote
from intake.models import (
    Attachment,
    ContactPoint,
    Interaction,
    Resident,
    Ticket,
    utcnow,
)
from intake.phones import normalize_email, normalize_phone
from intake.privacy import redact_contact
from intake.tickets import INSERT_EVENTS, INSERT_JOBS, event_row, format_ref, job_row, record_event

SUBJECT_LENGTH = 80
URGENT_QUEUE = "urgent"


@dataclass(frozen=True)
class Receipt:
    ticket_id: int
    ticket_ref: str
    interaction_id: int
    created_ticket: bool
    duplicate: bool
    reopened: bool = False
    linked_to: str | None = None


@dataclass(frozen=True)
class _Resident:
    id: int
    unit_id: int | None
    language: str | None


# receive() is every channel's hot path: its statements are built once and run on the session's
# connection with plain parameters, at about half the CPU of an ORM flush or a statement built anew.
_EXISTING = (
    select(
        literal("existing").label("found"),
        Interaction.id,
        Interaction.ticket_id.label("other_id"),
        Ticket.ref.label("text"),
    )
    .join(Ticket, Ticket.id == Interaction.ticket_id)
    .where(
        Interaction.channel == bindparam("channel"),
        Interaction.external_id == bindparam("external_id"),
    )
)
# One round trip for what receive() needs first: the contact already filed (`found` "existing":
# interaction id, ticket id, ref), else the resident owning its phone number or its address
# (`found` "phone"/"email": resident id, unit id, language).
_EXISTING_OR_RESIDENT: CompoundSelect[*tuple[Any, ...]] = union_all(
    _EXISTING,
    *(
        select(literal(kind), Resident.id, Resident.unit_id, Resident.language)
        .join(ContactPoint)
        .where(ContactPoint.kind == kind, ContactPoint.value == bindparam(kind))
        for kind in ("phone", "email")
    ),
)
_INSERT_TICKET = insert(Ticket).returning(Ticket.id)
_SET_REF = update(Ticket).where(Ticket.id == bindparam("ticket")).values(ref=bindparam("new_ref"))
_INSERT_INTERACTION = insert(Interaction).returning(Interaction.id)
_INSERT_ATTACHMENTS = insert(Attachment)


def _duplicate(row: Row[*tuple[Any, ...]]) -> Receipt:
    return Receipt(
        ticket_id=row.other_id,
        ticket_ref=row.text,
        interaction_id=row.id,
        created_ticket=False,
        duplicate=True,
    )


def _existing(session: Session, contact: InboundContact) -> Receipt | None:
    params = {"channel": contact.channel, "external_id": contact.external_id}
    row = session.connection().execute(_EXISTING, params).first()
    return None if row is None else _duplicate(row)


def _existing_or_resident(
    session: Session, contact: InboundContact, phone: str | None, email: str | None
) -> tuple[Receipt | None, _Resident | None]:
    """The receipt of the same contact filed before, else the resident who sent it (matched by
    phone number first, then by address)."""
    params = {
        "channel": contact.channel,
        "external_id": contact.external_id,
        "phone": phone,
        "email": email,
    }
    rows = {row.found: row for row in session.connection().execute(_EXISTING_OR_RESIDENT, params)}
    if "existing" in rows:
        return _duplicate(rows["existing"]), None
    if contact.resident_id is not None:
        chosen = session.get(Resident, contact.resident_id)
        if chosen is not None:
            return None, _Resident(chosen.id, chosen.unit_id, chosen.language)
    match = rows.get("phone") or rows.get("email")
    return None, (_Resident(match.id, match.other_id, match.text) if match else None)


def is_participant(session: Session, ticket: Ticket, phone: str | None, email: str | None) -> bool:
    """The sender is the ticket's contact, its resident, or has written on it before."""
    if (phone and phone == ticket.contact_phone) or (email and email == ticket.contact_email):
        return True
    if ticket.resident_id is not None:
        values = [v for v in (phone, email) if v]
        if values and session.scalar(
            select(ContactPoint.id).where(
                ContactPoint.resident_id == ticket.resident_id, ContactPoint.value.in_(values)
            )
        ):
            return True
    senders = [v for v in (phone, email) if v]
    return (
        bool(senders)
        and session.scalar(
            select(Interaction.id)
            .where(
                Interaction.ticket_id == ticket.id,
                Interaction.direction == "in",
                Interaction.sender.in_(senders),
            )
            .limit(1)
        )
        is not None
    )


def _thread_candidate(
    session: Session, contact: InboundContact, resident: _Resident | None
) -> Ticket | None:
    """The ticket this contact answers. A ticket the channel verified (a signed reference) wins:
    it vouches for that ticket only, so another id in the same References list (anyone's
    Message-ID can be copied there) never moves the message to a different ticket."""
    if contact.ticket_ref and contact.ticket_ref_trusted:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == contact.ticket_ref.upper()))
        if ticket is not None:
            return ticket
    if contact.references:
        ticket = session.scalar(
            select(Ticket)
            .join(Interaction, Interaction.ticket_id == Ticket.id)
            .where(Interaction.external_id.in_(contact.references))
            .order_by(Interaction.id.desc())
            .limit(1)
        )
        if ticket is not None:
            return ticket
    if contact.ticket_ref:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == contact.ticket_ref.upper()))
        if ticket is not None:
            return ticket
    if contact.attach_to_open_ticket and resident is not None:
        return session.scalar(
            select(Ticket)
            .where(Ticket.resident_id == resident.id, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(1)
        )
    return None


def _follow_merges(session: Session, ticket: Ticket) -> Ticket:
    seen = {ticket.id}
    while ticket.merged_into_id is not None and ticket.merged_into_id not in seen:
        ticket = session.get(Ticket, ticket.merged_into_id) or ticket
        seen.add(ticket.id)
    return ticket


def _subject(contact: InboundContact, config: HotlineConfig, category: str, language: str) -> str:
    if contact.subject and contact.subject.strip():
        return contact.subject.strip()[:300]
    first_line = next((line.strip() for line in contact.text.splitlines() if line.strip()), "")
    if first_line:
        return first_line[:SUBJECT_LENGTH]
    found = config.category(category)
    return found.names.get(language, category) if found else category


@dataclass(frozen=True)
class _NewTicket:
    id: int
    ref: str
    language: str
    result: Classification


def _new_ticket(
    session: Session,
    contact: InboundContact,
    config: HotlineConfig,
    resident: _Resident | None,
    phone: str | None,
    email: str | None,
    now: datetime,
    linked: Ticket | None,
) -> _NewTicket:
    """Insert the ticket (its id makes the ref); its events and jobs follow in `_receive_once`,
    in one statement per table with the interaction's rows."""
    text = "\n".join(p for p in (contact.subject, contact.text) if p)
    result = classify(
        text,
        config,
        language_hint=contact.language_hint,
        category_hint=contact.category_hint,
        priority_hint=contact.priority_hint,
    )
    language = result.language
    if (
        not contact.language_hint
        and not text.strip()
        and resident is not None
        and resident.language
    ):
        language = resident.language
    automatic = _kept_closed(contact, result)
    connection = session.connection()
    ticket_id = connection.execute(
        _INSERT_TICKET,
        {
            "channel": contact.channel,
            "category": result.category,
            "priority": result.priority,
            "status": "closed" if automatic else "new",
            "resident_id": resident.id if resident else None,
            "unit_id": resident.unit_id if resident else None,
            "contact_phone": phone,
            "contact_email": email,
            "language": language,
            "subject": _subject(contact, config, result.category, language),
            "description": contact.text[:20000],
            "linked_ticket_id": linked.id if linked else None,
            "closed_at": now if automatic else None,
            "created_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    ref = format_ref(config.ticket_prefix, ticket_id)
    connection.execute(_SET_REF, {"ticket": ticket_id, "new_ref": ref})
    return _NewTicket(ticket_id, ref, language, result)


def _kept_closed(contact: InboundContact, result: Classification) -> bool:
    """Automatic mail that answers no ticket is kept, closed and not routed (unless an emergency)."""
    return contact.sender_kind != "human" and result.category != "emergency"


def _new_ticket_rows(
    contact: InboundContact, ticket: _NewTicket, linked: Ticket | None, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The new ticket's events and its routing job."""
    result = ticket.result
    events = [
        event_row(
            ticket.id,
            "created",
            f"received by {contact.channel}: {result.category}, {result.priority}, "
            f"{ticket.language}",
            now=now,
            category=result.category,
            priority=result.priority,
            language=ticket.language,
            matched=list(result.matched),
            negated=list(result.negated),
        )
    ]
    if linked is not None:
        events.append(
            event_row(
                ticket.id,
                "linked",
                f"names {linked.ref}, but the sender is not one of its participants",
                now=now,
                linked_ref=linked.ref,
            )
        )
    if _kept_closed(contact, result):
        events.append(
            event_row(
                ticket.id,
                "filed_automatic",
                f"{contact.sender_kind} message that answers no ticket: kept, closed, not routed",
                now=now,
                sender_kind=contact.sender_kind,
            )
        )
        return events, []
    queue = URGENT_QUEUE if result.priority == "P1" else "default"
    route = job_row(
        "route_ticket",
        queue=queue,
        dedupe_key=f"route:{ticket.id}",
        now=now,
        ticket_id=ticket.id,
    )
    return events, [route]


def _answered(
    session: Session, contact: InboundContact, ticket: Ticket, interaction_id: int, now: datetime
) -> bool:
    """A message on an existing ticket: reopen or resume it, on its timeline. True if reopened."""
    reopened = False
    if contact.sender_kind == "human":
        reopened = resident_wrote(session, ticket, kind=contact.kind, now=now)
    record_event(
        session,
        ticket,
        "interaction_added",
        f"{contact.kind} by {contact.channel}",
        now=now,
        interaction_id=interaction_id,
        sender_kind=contact.sender_kind,
    )
    ticket.updated_at = now
    return reopened


def _receive_once(
    session: Session, contact: InboundContact, config: HotlineConfig, now: datetime
) -> Receipt:
    phone = normalize_phone(contact.sender_phone, config.phone_region)
    email = normalize_email(contact.sender_email)
    existing, resident = _existing_or_resident(session, contact, phone, email)
    if existing is not None:
        return existing
    candidate = _thread_candidate(session, contact, resident)
    ticket: Ticket | None = None
    linked: Ticket | None = None
    if candidate is not None:
        vouched = (
            contact.ticket_ref_trusted
            and contact.ticket_ref is not None
            and candidate.ref == contact.ticket_ref.upper()
        )
        candidate = _follow_merges(session, candidate)
        trusted = contact.sender_authenticated is not False and (
            vouched
            or is_participant(session, candidate, phone, email)
            or (
                contact.attach_to_open_ticket
                and resident is not None
                and candidate.resident_id == resident.id
            )
        )
        reopen_days = config.mail.reopen_closed_within_days
        closed_long_ago = candidate.status == "closed" and (
            candidate.closed_at is None or now - candidate.closed_at > timedelta(days=reopen_days)
        )
        if not trusted or closed_long_ago:
            linked = candidate
        else:
            ticket = candidate
    new = None
    if ticket is None:
        new = _new_ticket(session, contact, config, resident, phone, email, now, linked)
        ticket_id, ref, language = new.id, new.ref, new.language
    else:
        assert ticket.ref is not None
        ticket_id, ref, language = ticket.id, ticket.ref, ticket.language
    connection = session.connection()
    interaction_id = connection.execute(
        _INSERT_INTERACTION,
        {
            "ticket_id": ticket_id,
            "kind": contact.kind,
            "direction": "in",
            "channel": contact.channel,
            "external_id": contact.external_id,
            "sender": phone or email or contact.sender_name,
            "recipient": contact.recipient,
            "subject": contact.subject,
            "body_text": contact.text,
            "body_html": contact.html,
            "language": language,
            "meta": {
                "sender_name": contact.sender_name,
                "sender_kind": contact.sender_kind,
                "ivr_selections": list(contact.ivr_selections),
                "references": list(contact.references),
                "raw_ref": contact.raw_ref,
                **contact.meta,
            },
            "created_at": now,
        },
    ).scalar_one()
    if contact.attachments:
        connection.execute(
            _INSERT_ATTACHMENTS,
            [
                {
                    "interaction_id": interaction_id,
                    "filename": att.filename,
                    "content_type": att.content_type,
                    "size": att.size,
                    "sha256": att.sha256,
                    "external_url": att.external_url,
                    "external_id": att.external_id,
                    "inline": att.inline,
                    "content_id": att.content_id,
                }
                for att in contact.attachments
            ],
        )
    reopened = False
    if new is None:
        assert ticket is not None
        reopened = _answered(session, contact, ticket, interaction_id, now)
    else:
        events, jobs = _new_ticket_rows(contact, new, linked, now)
        if jobs and resident is not None and contact.sender_kind == "human":
            incident = link_at_intake(
                session,
                ticket_id=ticket_id,
                unit_id=resident.unit_id,
                text="\n".join(p for p in (contact.subject, contact.text) if p),
                category=new.result.category,
                channel=contact.channel,
                external_id=contact.external_id,
                resident_id=resident.id,
                phone=phone,
                email=email,
                now=now,
            )
            if incident is not None:  # its department already works on it: not routed again
                jobs = [job for job in jobs if job["job"] != "route_ticket"]
        if contact.sender_kind == "human" and (
            contact.channel in HAND_ENTERED_CHANNELS
            or (
                contact.channel == "voice"
                and (
                    contact.kind == "voicemail" or (contact.kind == "call" and contact.text.strip())
                )
            )
        ):
            jobs.append(  # the resident heard the reference; the message keeps it (`received`)
                job_row(
                    "send_scripted_reply",
                    dedupe_key=f"reply:received:{ticket_id}:",
                    now=now,
                    ticket_id=ticket_id,
                    event="received",
                    key="",
                )
            )
        if contact.sender_kind == "human":
            jobs.append(
                job_row(
                    "acknowledge",
                    dedupe_key=f"ack:{interaction_id}",
                    now=now,
                    ticket_id=ticket_id,
                    interaction_id=interaction_id,
                )
            )
        connection.execute(INSERT_EVENTS, events)
        if jobs:
            connection.execute(INSERT_JOBS, jobs)
    return Receipt(
        ticket_id=ticket_id,
        ticket_ref=ref,
        interaction_id=interaction_id,
        created_ticket=new is not None,
        duplicate=False,
        reopened=reopened,
        linked_to=linked.ref if linked else None,
    )


def receive(
    sessions: sessionmaker[Session],
    contact: InboundContact,
    config: HotlineConfig,
    *,
    now: datetime | None = None,
    attempts: int = 5,
    also: Callable[[Session, Receipt], None] | None = None,
) -> Receipt:
    """Store `contact` once. A race with a concurrent duplicate ends in that one's receipt.

    `also(session, receipt)` runs in the same transaction, duplicate or not: a transport's own
    bookkeeping is then committed with the ticket, in one commit instead of two.
    """
    contact = redact_contact(contact)  # card and ID numbers never stored (intake.privacy)
    for attempt in range(attempts):
        session = sessions()
        try:
            receipt = _receive_once(session, contact, config, now or utcnow())
            if also is not None:
                also(session, receipt)
            session.commit()
            return receipt
        except IntegrityError:
            session.rollback()
            existing = _existing(session, contact)
            if existing is not None:
                if also is not None:
                    also(session, existing)
                    session.commit()
                return existing
            if attempt == attempts - 1:
                raise
        except OperationalError:
            session.rollback()
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (2**attempt))
        finally:
            session.close()
    raise RuntimeError("unreachable")
