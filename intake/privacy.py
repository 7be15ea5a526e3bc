"""Residents' personal data (Taiwan's 個人資料保護法, Hong Kong's PDPO): redaction at intake, export of
everything held about one resident, and erasure that keeps tickets for statistics.

- `redact(text)`: payment card numbers (13–19 digits passing the Luhn check) keep only their last four
  digits; Taiwan ID numbers (身分證字號, checksum verified) and HKIDs (check digit verified) keep only
  their first letter. Applied to every contact's text at intake (`intake.service.receive`).
- `export_resident(session, id)`: the resident, contact points, tickets with their timelines, calls,
  callbacks and messages sent, as one JSON-ready dict; `export_text` makes a readable document of it.
- `erase_resident(session, id, forget_recording)`: contact points, names, notes, message texts,
  addresses and numbers removed; recordings deleted (at Twilio too, through `forget_recording`);
  tickets kept with their category, priority, department, status and times.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.contact import InboundContact
from intake.db import rowcount
from intake.models import (
    Attachment,
    Call,
    Callback,
    CallStatusEvent,
    ContactPoint,
    Interaction,
    OutgoingMessage,
    RawMessage,
    Resident,
    Ticket,
)

# --- redaction -------------------------------------------------------------------------------

CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
TW_ID = re.compile(r"(?<![A-Za-z0-9])([A-Z])([12]\d{8})(?![A-Za-z0-9])")
HKID = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,2})(\d{6})\s?\(?([0-9A])\)?(?![A-Za-z0-9])")
# Taiwan: the letter's two-digit code (A=10, B=11, ... as issued, I=34, O=35, W=32...).
_TW_LETTERS = "ABCDEFGHJKLMNPQRSTUVXYWZIO"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _tw_valid(letter: str, rest: str) -> bool:
    code = _TW_LETTERS.index(letter) + 10
    digits = [code // 10, code % 10, *map(int, rest)]
    weights = [1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1]
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def _hkid_valid(letters: str, digits: str, check: str) -> bool:
    values = [36] if len(letters) == 1 else []
    values += [ord(c) - 55 for c in letters] + [int(d) for d in digits]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    expected = (11 - total % 11) % 11
    return check == ("A" if expected == 10 else str(expected))


def redact(text: str) -> str:
    """Card numbers, Taiwan ID numbers and HKIDs masked where detected (checksums must match)."""
    if not text or not any(ch.isdigit() for ch in text):
        return text

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if not _luhn(digits):
            return m.group(0)
        return "*" * (len(digits) - 4) + digits[-4:]

    def tw(m: re.Match[str]) -> str:
        if not _tw_valid(m.group(1), m.group(2)):
            return m.group(0)
        return m.group(1) + "*" * 9

    def hk(m: re.Match[str]) -> str:
        if not _hkid_valid(m.group(1), m.group(2), m.group(3)):
            return m.group(0)
        return m.group(1) + "*" * 6 + "(*)"

    return HKID.sub(hk, TW_ID.sub(tw, CARD.sub(card, text)))


def redact_contact(contact: InboundContact) -> InboundContact:
    """The contact with its text and subject redacted (the same object when nothing changed)."""
    text, subject = redact(contact.text), redact(contact.subject or "") or contact.subject
    if text == contact.text and subject == contact.subject:
        return contact
    return dataclasses.replace(contact, text=text, subject=subject)


# --- what one resident is -----------------------------------------------------------------------


def _numbers_and_addresses(session: Session, resident: Resident) -> tuple[list[str], list[str]]:
    points = list(
        session.scalars(select(ContactPoint).where(ContactPoint.resident_id == resident.id))
    )
    return (
        [p.value for p in points if p.kind == "phone"],
        [p.value for p in points if p.kind == "email"],
    )


def _tickets(
    session: Session, resident: Resident, phones: list[str], emails: list[str]
) -> list[Ticket]:
    clauses = [Ticket.resident_id == resident.id]
    if phones:
        clauses.append(Ticket.contact_phone.in_(phones))
    if emails:
        clauses.append(Ticket.contact_email.in_(emails))
    return list(session.scalars(select(Ticket).where(or_(*clauses)).order_by(Ticket.id)))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def export_resident(session: Session, resident_id: int, config: Any) -> dict[str, Any]:
    """Everything held about one resident, ready for `json.dumps`. LookupError when unknown."""
    from intake.serialize import ticket_detail_json

    resident = session.get(Resident, resident_id)
    if resident is None:
        raise LookupError(f"no resident {resident_id}")
    phones, emails = _numbers_and_addresses(session, resident)
    tickets = _tickets(session, resident, phones, emails)
    ticket_ids = [t.id for t in tickets]
    calls = list(
        session.scalars(
            select(Call)
            .where(
                or_(
                    Call.resident_id == resident.id,
                    Call.from_number.in_(phones or [""]),
                    Call.to_number.in_(phones or [""]),
                )
            )
            .order_by(Call.id)
        )
    )
    sent = list(
        session.scalars(
            select(OutgoingMessage)
            .where(
                or_(
                    OutgoingMessage.ticket_id.in_(ticket_ids or [0]),
                    OutgoingMessage.to.in_([*phones, *emails] or [""]),
                )
            )
            .order_by(OutgoingMessage.id)
        )
    )
    unit = resident.unit
    return {
        "resident": {
            "id": resident.id,
            "name": resident.name,
            "language": resident.language,
            "spoken_language": resident.spoken_language,
            "unit": unit.label if unit is not None else None,
            "building": unit.building.code if unit is not None and unit.building else None,
            "preferred_contact_time": resident.preferred_contact_time,
            "notes": resident.notes,
            "created_at": _iso(resident.created_at),
        },
        "phones": phones,
        "emails": emails,
        "tickets": [ticket_detail_json(t, config) for t in tickets],
        "calls": [
            {
                "call_sid": c.call_sid,
                "direction": c.direction,
                "from": c.from_number,
                "to": c.to_number,
                "status": c.status,
                "duration_seconds": c.duration_seconds,
                "started_at": _iso(c.started_at),
            }
            for c in calls
        ],
        "messages_sent": [
            {
                "channel": m.channel,
                "to": m.to,
                "subject": m.subject,
                "body_text": m.body_text,
                "status": m.status,
                "created_at": _iso(m.created_at),
            }
            for m in sent
        ],
        "exported_at": _iso(utcnow()),
    }


def export_text(data: dict[str, Any]) -> str:
    """The export as a document a resident can read."""
    r = data["resident"]
    lines = [
        f"# 住戶資料 Resident data #{r['id']}",
        "",
        f"- 姓名 Name: {r['name'] or '—'}",
        f"- 單位 Unit: {r['building'] or ''} {r['unit'] or '—'}",
        f"- 語言 Language: {r['language'] or '—'}",
        f"- 電話 Phones: {', '.join(data['phones']) or '—'}",
        f"- 電郵 Emails: {', '.join(data['emails']) or '—'}",
        f"- 備註 Notes: {r['notes'] or '—'}",
        "",
        f"## 案件 Tickets ({len(data['tickets'])})",
    ]
    for t in data["tickets"]:
        lines += ["", f"### {t['ref']} · {t['created_at']} · {t['status']}", t["subject"] or ""]
        for entry in t.get("timeline", []):
            lines.append(f"- {entry['created_at']} {entry['kind']}: {entry['body_text']}")
    lines += ["", f"## 通話 Calls ({len(data['calls'])})"]
    lines += [f"- {c['started_at']} {c['direction']} {c['status']}" for c in data["calls"]]
    lines += ["", f"## 發出的訊息 Messages sent ({len(data['messages_sent'])})"]
    for m in data["messages_sent"]:
        lines += [
            f"- {m['created_at']} {m['channel']} → {m['to']}: {m['subject'] or ''}",
            f"  {m['body_text']}",
        ]
    lines += ["", f"匯出時間 Exported at: {data['exported_at']}", ""]
    return "\n".join(lines)


# --- erasure ----------------------------------------------------------------------------------


def remove_attachment(session: Session, attachment: Attachment, data_dir: Path) -> None:
    """The row, and its file when no other attachment row shares it."""
    digest = attachment.sha256
    session.delete(attachment)
    session.flush()
    if digest and not session.scalar(
        select(Attachment.id).where(Attachment.sha256 == digest).limit(1)
    ):
        for path in (
            data_dir / "attachments" / digest[:2] / digest,
            data_dir / "attachments" / digest,
        ):
            path.unlink(missing_ok=True)


def erase_resident(
    session: Session,
    resident_id: int,
    data_dir: Path,
    forget_recording: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Removes the resident's personal data; tickets stay for statistics. Counts of what changed.

    `forget_recording(sid)` deletes a recording at Twilio (raises to keep the row for a retry)."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise LookupError(f"no resident {resident_id}")
    phones, emails = _numbers_and_addresses(session, resident)
    tickets = _tickets(session, resident, phones, emails)
    ticket_ids = [t.id for t in tickets] or [0]
    counts = {"tickets_kept": len(tickets)}

    interactions = list(
        session.scalars(select(Interaction).where(Interaction.ticket_id.in_(ticket_ids)))
    )
    recordings = 0
    for interaction in interactions:
        for attachment in list(interaction.attachments):
            if attachment.external_id and forget_recording is not None:
                forget_recording(attachment.external_id)
                recordings += 1
            remove_attachment(session, attachment, data_dir)
        interaction.body_text, interaction.body_html = "", None
        interaction.subject, interaction.sender, interaction.recipient = None, None, None
        interaction.meta = {"erased": True}
    counts["interactions"] = len(interactions)
    counts["recordings"] = recordings

    for ticket in tickets:
        ticket.subject, ticket.description = "—", ""
        ticket.contact_phone, ticket.contact_email = None, None
    raw_ids = [i.id for i in interactions] or [0]
    counts["raw_mail"] = rowcount(
        session.execute(
            delete(RawMessage).where(
                or_(
                    RawMessage.interaction_id.in_(raw_ids),
                    RawMessage.envelope_from.in_(emails or [""]),
                )
            )
        )
    )
    counts["messages_sent"] = rowcount(
        session.execute(
            update(OutgoingMessage)
            .where(
                or_(
                    OutgoingMessage.ticket_id.in_(ticket_ids),
                    OutgoingMessage.to.in_([*phones, *emails] or [""]),
                )
            )
            .values(to="", subject=None, body_text="", body_html=None, headers={})
        )
    )
    calls = list(
        session.scalars(
            select(Call).where(
                or_(
                    Call.resident_id == resident.id,
                    Call.ticket_id.in_(ticket_ids),
                    Call.from_number.in_(phones or [""]),
                    Call.to_number.in_(phones or [""]),
                )
            )
        )
    )
    for call in calls:
        call.from_number = None if call.direction.startswith("inbound") else call.from_number
        call.to_number = None if not call.direction.startswith("inbound") else call.to_number
        call.meta, call.resident_id = {}, None
    counts["calls"] = len(calls)
    if calls:
        session.execute(
            delete(CallStatusEvent).where(CallStatusEvent.call_sid.in_([c.call_sid for c in calls]))
        )
    now = utcnow()
    session.execute(
        update(Callback)
        .where(Callback.ticket_id.in_(ticket_ids), Callback.status == "scheduled")
        .values(status="cancelled", outcome="erased", updated_at=now)
    )
    session.execute(update(Callback).where(Callback.ticket_id.in_(ticket_ids)).values(phone=None))
    counts["contact_points"] = rowcount(
        session.execute(delete(ContactPoint).where(ContactPoint.resident_id == resident.id))
    )
    resident.name, resident.notes, resident.preferred_contact_time = None, None, None
    return counts
