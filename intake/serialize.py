"""The JSON shapes of the public contract (ARCHITECTURE.md), shared by the CLI and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.config import HotlineConfig
from intake.models import Callback, Event, Interaction, OutgoingMessage, Resident, Ticket


def iso(moment: datetime | None, config: HotlineConfig | None = None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(config.timezone if config else None).isoformat()


@overload
def resident_json(resident: Resident) -> dict[str, Any]: ...
@overload
def resident_json(resident: None) -> None: ...
@overload
def resident_json(resident: Resident | None) -> dict[str, Any] | None: ...
def resident_json(resident: Resident | None) -> dict[str, Any] | None:
    if resident is None:
        return None
    unit = resident.unit
    return resident_fields_json(
        resident.id,
        resident.name,
        resident.language,
        f"{unit.building.code} {unit.label}" if unit else None,
        [
            {"kind": cp.kind, "value": cp.value, "unreachable": cp.unreachable}
            for cp in resident.contact_points
        ],
    )


def resident_fields_json(
    ident: int,
    name: str | None,
    language: str | None,
    unit: str | None,
    contact_points: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": ident,
        "name": name,
        "language": language,
        "unit": unit,
        "contact_points": contact_points,
    }


# A ticket's JSON keys in order; the API list selects its columns in this order too.
TICKET_JSON_KEYS = (
    "ref",
    "channel",
    "category",
    "priority",
    "status",
    "escalated",
    "department",
    "assignee",
    "language",
    "subject",
    "description",
    "contact_phone",
    "contact_email",
    "resident",
    "satisfaction",
    "first_response_due_at",
    "resolution_due_at",
    "created_at",
    "updated_at",
)
TICKET_JSON_TIMES = TICKET_JSON_KEYS[-4:]


def ticket_json(ticket: Ticket, config: HotlineConfig) -> dict[str, Any]:
    data = {key: getattr(ticket, key) for key in TICKET_JSON_KEYS}
    data["department"] = ticket.department.code if ticket.department else None
    data["assignee"] = ticket.assignee.email if ticket.assignee else None
    data["resident"] = resident_json(ticket.resident)
    return ticket_times_json(data, config)


def ticket_times_json(data: dict[str, Any], config: HotlineConfig) -> dict[str, Any]:
    """Finishes a ticket's JSON (TICKET_JSON_KEYS) in place: its times in the centre's zone."""
    tz = config.timezone
    for key in TICKET_JSON_TIMES:
        moment = data[key]
        if moment is not None:
            data[key] = moment.astimezone(tz).isoformat()
    return data


def interaction_json(item: Interaction, config: HotlineConfig) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "direction": item.direction,
        "channel": item.channel,
        "sender": item.sender,
        "subject": item.subject,
        "body_text": item.body_text,
        "external_id": item.external_id,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "external_id": a.external_id,
            }
            for a in item.attachments
        ],
        "meta": item.meta,
        "created_at": iso(item.created_at, config),
    }


def event_json(event: Event, config: HotlineConfig) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "actor": event.actor,
        "message": event.message,
        "data": event.data,
        "created_at": iso(event.created_at, config),
    }


def callback_json(cb: Callback, config: HotlineConfig) -> dict[str, Any]:
    return {
        "id": cb.id,
        "ticket_ref": cb.ticket.ref,
        "phone": cb.phone,
        "email": cb.email,
        "purpose": cb.purpose,
        "due_at": iso(cb.due_at, config),
        "queued_at": iso(cb.queued_at, config),
        "status": cb.status,
        "attempts": cb.attempts,
        "outcome": cb.outcome,
        "claimed_by": cb.claimer.email if cb.claimer is not None else None,
    }


def outgoing_json(msg: OutgoingMessage, session: Session, config: HotlineConfig) -> dict[str, Any]:
    ref = (
        session.scalar(select(Ticket.ref).where(Ticket.id == msg.ticket_id))
        if msg.ticket_id
        else None
    )
    return {
        "id": msg.id,
        "ticket_ref": ref,
        "channel": msg.channel,
        "to": msg.to,
        "subject": msg.subject,
        "body_text": msg.body_text,
        "message_id": msg.message_id,
        "in_reply_to": msg.in_reply_to,
        "headers": msg.headers,
        "status": msg.status,
        "created_at": iso(msg.created_at, config),
    }


def ticket_detail_json(ticket: Ticket, config: HotlineConfig) -> dict[str, Any]:
    data = ticket_json(ticket, config)
    data["timeline"] = [interaction_json(i, config) for i in ticket.interactions]
    data["events"] = [event_json(e, config) for e in ticket.events]
    data["callbacks"] = [callback_json(c, config) for c in ticket.callbacks]
    return data
