"""Building-wide incidents and planned works: one problem, many contacts, one answer.

A supervisor declares an incident for buildings (optionally some units); new tickets from their
residents that match its category or keywords are linked to it at intake (not routed again); a
caller from an affected building hears it first; notices tell every household, once per step
(`declared`, `update:N`, `resolved`) and address. Resolving it resolves its open tickets through
`intake.lifecycle`. The sending is the worker's (`worker/notices.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import audit, lifecycle
from intake.clock import utcnow
from intake.config import HotlineConfig
from intake.constants import OPEN_STATUSES
from intake.models import (
    INCIDENT_KINDS,
    INCIDENT_TEXT_LANGUAGES,
    Building,
    ContactPoint,
    Incident,
    IncidentBuilding,
    IncidentContact,
    IncidentNotice,
    OutgoingMessage,
    Resident,
    Ticket,
    Unit,
)
from intake.signed_links import signed, verified
from intake.sms_refusals import refusal_code
from intake.tickets import enqueue_after_commit, record_event

TEXT_FALLBACKS = {
    "yue": ("yue", "zh-Hant", "zh-Hans", "en"),
    "zh-Hant": ("zh-Hant", "zh-Hans", "en"),
    "zh-Hans": ("zh-Hans", "zh-Hant", "en"),
    "en": ("en", "zh-Hant", "zh-Hans"),
}
NOTICE_QUEUE = "low"


class IncidentError(ValueError):
    """Input an incident cannot take; `code` is stable (the console translates it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def text_for(incident: Incident, language: str) -> str:
    """The incident's words in `language`, else the nearest language it was given in."""
    texts = incident.texts or {}
    for lang in TEXT_FALLBACKS.get(language, (language, "zh-Hant", "zh-Hans", "en")):
        if (texts.get(lang) or "").strip():
            return str(texts[lang]).strip()
    return next((str(v) for v in texts.values() if v), "")


def _texts(texts: dict[str, str | None]) -> dict[str, str]:
    clean = {k: (v or "").strip() for k, v in texts.items() if k in INCIDENT_TEXT_LANGUAGES}
    clean = {k: v[:1000] for k, v in clean.items() if v}
    return clean


def declare(
    session: Session,
    *,
    buildings: list[str],
    category: str,
    texts: dict[str, str | None],
    config: HotlineConfig,
    actor: str,
    kind: str = "incident",
    keywords: list[str] | None = None,
    units: list[str] | None = None,
    starts_at: datetime | None = None,
    until: datetime | None = None,
    notify: bool = False,
    link_tickets: list[int] | None = None,
    now: datetime | None = None,
) -> Incident:
    """A new active incident; with `notify`, every household of its buildings is told."""
    now = now or utcnow()
    if kind not in INCIDENT_KINDS:
        raise IncidentError("bad_kind", f"kind must be one of {INCIDENT_KINDS}")
    if config.category(category) is None:
        raise IncidentError("bad_category", f"unknown category {category!r}")
    codes = [c.strip() for c in buildings if c.strip()]
    if not codes:
        raise IncidentError("no_buildings", "name at least one building")
    found = list(session.scalars(select(Building).where(Building.code.in_(codes))))
    missing = sorted(set(codes) - {b.code for b in found})
    if missing:
        raise IncidentError("unknown_building", f"unknown buildings: {', '.join(missing)}")
    clean = _texts(texts)
    if not clean:
        raise IncidentError("no_text", "give the description in at least one language")
    starts = starts_at or now
    if until is not None and until <= starts:
        raise IncidentError("bad_until", "the expected end must be after the start")
    incident = Incident(
        kind=kind,
        category=category,
        status="active",
        texts=clean,
        keywords=[k.strip() for k in (keywords or []) if k.strip()][:50],
        units=[u.strip() for u in (units or []) if u.strip()][:500],
        starts_at=starts,
        expected_end_at=until,
        notify=notify,
        updates=0,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    incident.buildings = found
    session.add(incident)
    session.flush()
    for ticket_id in link_tickets or []:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:
            link(session, ticket, incident, actor=actor, now=now)
    if notify:
        owe_notices(session, incident, "declared", now=now)
    changed()
    return incident


def update(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    texts: dict[str, str | None] | None = None,
    until: datetime | None = None,
    notify: bool = False,
    now: datetime | None = None,
) -> str:
    """New words or a new expected end; with `notify` the households hear the update. The step."""
    now = now or utcnow()
    if incident.status != "active":
        raise IncidentError("not_active", "the incident is already resolved")
    clean = _texts(texts or {})
    if clean:
        incident.texts = {**(incident.texts or {}), **clean}
    if until is not None:
        if until <= incident.starts_at:
            raise IncidentError("bad_until", "the expected end must be after the start")
        incident.expected_end_at = until
    incident.updates = (incident.updates or 0) + 1
    incident.updated_at = now
    step = f"update:{incident.updates}"
    changed()
    if notify:
        owe_notices(session, incident, step, now=now)
    return step


def resolve(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    config: HotlineConfig,
    note: str = "",
    now: datetime | None = None,
) -> list[str]:
    """Resolved: its open tickets are resolved (through the lifecycle), and the all-clear goes to
    the households (when it notified them) and to everyone who called or wrote. Returns the refs."""
    now = now or utcnow()
    if incident.status == "resolved":
        return []
    incident.status, incident.resolved_at, incident.updated_at = "resolved", now, now
    changed()
    words = note.strip() or text_for(incident, config.default_language)
    resolved: list[str] = []
    tickets = session.scalars(
        select(Ticket).where(Ticket.incident_id == incident.id, Ticket.status.in_(OPEN_STATUSES))
    )
    for ticket in tickets:
        lifecycle.resolve(
            session,
            ticket,
            f"incident #{incident.id} resolved: {words}",
            actor=actor,
            config=config,
            now=now,
        )
        resolved.append(ticket.ref or str(ticket.id))
    owe_notices(session, incident, "resolved", now=now)
    return resolved


def owe_notices(session: Session, incident: Incident, step: str, *, now: datetime) -> None:
    enqueue_after_commit(
        session,
        "send_incident_notices",
        queue=NOTICE_QUEUE,
        dedupe_key=f"notices:{incident.id}:{step}",
        now=now,
        incident_id=incident.id,
        step=step,
    )


def link(
    session: Session, ticket: Ticket, incident: Incident, *, actor: str, now: datetime | None = None
) -> bool:
    """Put the ticket in the incident's group (by hand or at intake). False if it already was."""
    if ticket.incident_id == incident.id:
        return False
    ticket.incident_id = incident.id
    record_event(
        session,
        ticket,
        "incident_linked",
        f"linked to incident #{incident.id}",
        actor=actor,
        now=now,
        incident_id=incident.id,
    )
    return True


def unlink(session: Session, ticket: Ticket, *, actor: str, now: datetime | None = None) -> bool:
    if ticket.incident_id is None:
        return False
    previous = ticket.incident_id
    ticket.incident_id = None
    record_event(
        session,
        ticket,
        "incident_unlinked",
        f"unlinked from incident #{previous}",
        actor=actor,
        now=now,
        incident_id=previous,
    )
    return True


def incident_context(
    session: Session, incident_id: int, language: str, cfg: HotlineConfig
) -> dict[str, Any]:
    """What the notice and acknowledgement templates say about an incident, in `language`."""
    incident = session.get(Incident, incident_id)
    assert incident is not None
    written = {"yue": "zh-Hant"}.get(language, language)
    category = cfg.category(incident.category)
    until = ""
    if incident.expected_end_at is not None:
        until = incident.expected_end_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
    starts = incident.starts_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
    spoken_until = ""
    if incident.expected_end_at is not None:  # said on the phone: the time alone when it is today
        local = incident.expected_end_at.astimezone(cfg.timezone)
        today = utcnow().astimezone(cfg.timezone).date() == local.date()
        spoken_until = local.strftime("%H:%M" if today else "%m-%d %H:%M")
    text = text_for(incident, language)
    if text and text[-1] not in "。.！!？?":
        text += "." if written == "en" else "。"
    return {
        "company": cfg.company(written),
        "incident_id": incident.id,
        "incident_text": text,
        "incident_category": category.names.get(written, incident.category)
        if category
        else incident.category,
        "incident_buildings": "、".join(b.name for b in incident.buildings)
        if written != "en"
        else ", ".join(b.name for b in incident.buildings),
        "incident_until": until,
        "incident_until_spoken": spoken_until,
        "incident_starts": starts,
        "planned": incident.kind == "planned",
    }


# --- who is affected --------------------------------------------------------------------------

# The active incidents, cached per process and database for `ACTIVE_CACHE_SECONDS` (and dropped
# at once when this process declares, updates or resolves one): with none active, the phone and
# intake pay nothing; with some, one primary-key lookup of the caller's building.
ACTIVE_CACHE_SECONDS = 5.0
_generation = 0
_active_cache: dict[str, tuple[float, int, list[ActiveIncident]]] = {}


@dataclass(frozen=True)
class ActiveIncident:
    id: int
    building_ids: frozenset[int]
    units: tuple[str, ...]
    starts_at: datetime


def changed() -> None:
    """This process changed an incident: its cached set is read again."""
    global _generation
    _generation += 1


def active_incidents(session: Session) -> list[ActiveIncident]:
    """The active incidents (newest first), from the process's cache when fresh."""
    key = str(session.get_bind().engine.url)
    cached = _active_cache.get(key)
    clock_now = time.monotonic()
    if cached and cached[1] == _generation and clock_now - cached[0] < ACTIVE_CACHE_SECONDS:
        return cached[2]
    buildings: dict[int, set[int]] = {}
    for incident_id, building_id in session.execute(
        select(IncidentBuilding.incident_id, IncidentBuilding.building_id)
        .join(Incident, Incident.id == IncidentBuilding.incident_id)
        .where(Incident.status == "active")
    ):
        buildings.setdefault(incident_id, set()).add(building_id)
    found = [
        ActiveIncident(i.id, frozenset(buildings.get(i.id, ())), tuple(i.units or ()), i.starts_at)
        for i in session.scalars(
            select(Incident).where(Incident.status == "active").order_by(Incident.id.desc())
        )
    ]
    _active_cache[key] = (clock_now, _generation, found)
    return found


_HOME_OF_RESIDENT = (
    select(Unit.building_id, Unit.label)
    .join(Resident, Resident.unit_id == Unit.id)
    .where(Resident.id == bindparam("resident"))
)
_HOME_OF_UNIT = select(Unit.building_id, Unit.label).where(Unit.id == bindparam("unit"))


def active_for_resident(session: Session, resident_id: int, now: datetime) -> list[Incident]:
    """Active incidents over the resident's home."""
    return _covering(session, _HOME_OF_RESIDENT, {"resident": resident_id}, now)


def active_for_unit(session: Session, unit_id: int, now: datetime) -> list[Incident]:
    """Active incidents that have started and cover this unit."""
    return _covering(session, _HOME_OF_UNIT, {"unit": unit_id}, now)


def active_over_home(
    session: Session, building_id: int, unit_label: str | None, now: datetime
) -> list[Incident]:
    """Active incidents that have started and cover this home, for a caller whose home is known
    already: no query unless one does (the active set is the process's cache)."""
    return _over(session, active_incidents(session), building_id, unit_label, now)


def buildings_under_incidents(session: Session, now: datetime) -> list[tuple[int, str]]:
    """The buildings (id, name, in code order) under an active incident that has started and
    covers the whole building: what a caller we cannot place chooses from. No query without one."""
    ids = {
        building_id
        for cached in active_incidents(session)
        if cached.starts_at <= now and not cached.units
        for building_id in cached.building_ids
    }
    if not ids:
        return []
    return [
        (row.id, row.name)
        for row in session.execute(
            select(Building.id, Building.name).where(Building.id.in_(ids)).order_by(Building.code)
        )
    ]


def _covering(session: Session, home: Any, params: dict[str, int], now: datetime) -> list[Incident]:
    active = active_incidents(session)
    if not active:
        return []
    row = session.execute(home, params).first()
    if row is None:
        return []
    building_id, label = row
    return _over(session, active, building_id, label, now)


def _over(
    session: Session,
    active: list[ActiveIncident],
    building_id: int,
    label: str | None,
    now: datetime,
) -> list[Incident]:
    found = []
    for cached in active:
        if building_id not in cached.building_ids or cached.starts_at > now:
            continue
        if cached.units and label not in cached.units:
            continue
        incident = session.get(Incident, cached.id)
        if incident is not None and incident.status == "active":
            found.append(incident)
    return found


def matches(incident: Incident, text: str, category: str) -> bool:
    """Its keywords in the words, or (without keywords) the same category."""
    if incident.keywords:
        lowered = text.lower()
        return any(str(k).lower() in lowered for k in incident.keywords)
    return category == incident.category


def link_at_intake(
    session: Session,
    *,
    ticket_id: int,
    unit_id: int | None,
    text: str,
    category: str,
    channel: str,
    external_id: str,
    resident_id: int | None,
    phone: str | None,
    email: str | None,
    now: datetime,
) -> Incident | None:
    """A new ticket from an affected building about the incident: linked, and counted as its
    contact (so the all-clear reaches the sender). None when nothing matches."""
    if unit_id is None:
        return None
    incident = next(
        (i for i in active_for_unit(session, unit_id, now) if matches(i, text, category)), None
    )
    if incident is None:
        return None
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    link(session, ticket, incident, actor="system", now=now)
    record_contact(
        session,
        incident.id,
        channel=channel,
        external_id=external_id,
        resident_id=resident_id,
        phone=phone,
        email=email,
        ticket_id=ticket_id,
        now=now,
    )
    return incident


def record_contact(
    session: Session,
    incident_id: int,
    *,
    channel: str,
    external_id: str,
    resident_id: int | None,
    phone: str | None,
    email: str | None,
    ticket_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Count a call or a message about the incident once (by its CallSid or Message-ID)."""
    exists = session.scalar(
        select(IncidentContact.id).where(
            IncidentContact.incident_id == incident_id,
            IncidentContact.channel == channel,
            IncidentContact.external_id == external_id,
        )
    )
    if exists:
        return False
    try:
        with session.begin_nested():
            session.add(
                IncidentContact(
                    incident_id=incident_id,
                    channel=channel,
                    external_id=external_id[:300],
                    resident_id=resident_id,
                    phone=phone,
                    email=email,
                    ticket_id=ticket_id,
                    created_at=now or utcnow(),
                )
            )
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class Recipient:
    channel: str
    to: str
    resident_id: int | None
    language: str


def recipients(
    session: Session, incident: Incident, step: str, config: HotlineConfig
) -> list[Recipient]:
    """Who hears this step: every household of the buildings (by SMS to a mobile and by email,
    in the resident's language; not those who opted out of non-urgent notices), and for the
    all-clear also everyone who called or wrote about it. One per channel and address."""
    from intake.phones import can_receive_sms

    urgent = incident.kind == "incident"
    building_ids = [b.id for b in incident.buildings]
    query = (
        select(Resident.id, Resident.language, ContactPoint.kind, ContactPoint.value, Unit.label)
        .join(Unit, Unit.id == Resident.unit_id)
        .join(ContactPoint, ContactPoint.resident_id == Resident.id)
        .where(Unit.building_id.in_(building_ids), ContactPoint.unreachable.is_(False))
        .order_by(Resident.id, ContactPoint.id)
    )
    if not urgent:
        query = query.where(Resident.notices_opt_out.is_(False))
    found: dict[tuple[str, str], Recipient] = {}

    def add(kind: str, value: str, resident_id: int | None, language: str | None) -> None:
        channel = "sms" if kind == "phone" else "email"
        if channel == "sms" and not can_receive_sms(value):
            return
        found.setdefault(
            (channel, value),
            Recipient(channel, value, resident_id, language or config.default_language),
        )

    # Residents whose own ticket was in the incident are told on it (its resolved message).
    told_on_ticket: set[int] = set()
    if step == "resolved":
        told_on_ticket = set(
            session.scalars(
                select(Ticket.resident_id).where(
                    Ticket.incident_id == incident.id, Ticket.resident_id.is_not(None)
                )
            )
        )
    if incident.notify or step != "resolved":
        for rid, language, kind, value, label in session.execute(query):
            if incident.units and label not in incident.units:
                continue
            if rid in told_on_ticket:
                continue
            add(kind, value, rid, language)
    if step == "resolved":
        rows = session.execute(
            select(IncidentContact, Resident.language)
            .outerjoin(Resident, Resident.id == IncidentContact.resident_id)
            .where(IncidentContact.incident_id == incident.id)
            .order_by(IncidentContact.id)
        )
        for contact, language in rows:
            if contact.ticket_id is not None:
                continue  # its ticket was resolved with the incident: the resident is told there
            if contact.phone:
                add("phone", contact.phone, contact.resident_id, language)
            elif contact.email:
                add("email", contact.email, contact.resident_id, language)
    return list(found.values())


# --- what the console, the API and the command line show --------------------------------------


def notice_progress(session: Session, incident_id: int) -> dict[str, dict[str, int]]:
    """Per step: how many notices are queued, sent, kept, failed."""
    rows = session.execute(
        select(IncidentNotice.step, OutgoingMessage.status, func.count())
        .join(OutgoingMessage, OutgoingMessage.id == IncidentNotice.outgoing_message_id)
        .where(IncidentNotice.incident_id == incident_id)
        .group_by(IncidentNotice.step, OutgoingMessage.status)
    )
    progress: dict[str, dict[str, int]] = {}
    for step, status, count in rows:
        progress.setdefault(step, {})[status] = int(count)
    return progress


def failed_notices(session: Session, incident_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(IncidentNotice, OutgoingMessage.status, OutgoingMessage.error)
        .join(OutgoingMessage, OutgoingMessage.id == IncidentNotice.outgoing_message_id)
        .where(
            IncidentNotice.incident_id == incident_id,
            OutgoingMessage.status.in_(("failed", "undeliverable")),
        )
        .order_by(IncidentNotice.id)
    )
    return [
        {
            "step": n.step,
            "channel": n.channel,
            "to": n.to,
            "status": status,
            "error": error,
            "refusal_code": refusal_code(error) if n.channel == "sms" else None,
        }
        for n, status, error in rows
    ]


def serialize(
    session: Session, incident: Incident, *, detail: bool = True, department_id: int | None = None
) -> dict[str, Any]:
    """The incident as JSON; with `department_id`, only that department's tickets are listed."""
    data: dict[str, Any] = {
        "id": incident.id,
        "kind": incident.kind,
        "category": incident.category,
        "status": incident.status,
        "buildings": sorted(b.code for b in incident.buildings),
        "units": list(incident.units or []),
        "texts": dict(incident.texts or {}),
        "keywords": list(incident.keywords or []),
        "starts_at": incident.starts_at.isoformat(),
        "expected_end_at": incident.expected_end_at.isoformat()
        if incident.expected_end_at
        else None,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "notify": incident.notify,
        "created_at": incident.created_at.isoformat(),
    }
    if detail:
        tickets = select(Ticket.ref, Ticket.status).where(Ticket.incident_id == incident.id)
        if department_id is not None:
            tickets = tickets.where(Ticket.department_id == department_id)
        data["tickets"] = [
            {"ref": ref, "status": status}
            for ref, status in session.execute(tickets.order_by(Ticket.id))
        ]
        data["contacts"] = session.scalar(
            select(func.count())
            .select_from(IncidentContact)
            .where(IncidentContact.incident_id == incident.id)
        )
        data["notices"] = notice_progress(session, incident.id)
        data["failed_notices"] = failed_notices(session, incident.id)
    return data


def list_incidents(session: Session, status: str | None = None) -> list[Incident]:
    query = select(Incident).order_by(Incident.id.desc())
    if status:
        query = query.where(Incident.status == status)
    return list(session.scalars(query))


# --- detection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    building: str
    category: str
    tickets: list[Ticket]


def suggestions(session: Session, config: HotlineConfig, now: datetime) -> list[Suggestion]:
    """N new tickets of one category in one building within M minutes, none yet in an incident
    (configured as `incidents.suggest_after_tickets` and `incidents.suggest_within_minutes`)."""
    conf = config.incidents
    since = now - timedelta(minutes=conf.suggest_within_minutes)
    rows = session.execute(
        select(Ticket, Building.code)
        .join(Unit, Unit.id == Ticket.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .where(
            Ticket.created_at >= since,
            Ticket.incident_id.is_(None),
            Ticket.status.in_(OPEN_STATUSES),
        )
        .order_by(Ticket.id)
    )
    groups: dict[tuple[str, str], list[Ticket]] = {}
    for ticket, code in rows:
        groups.setdefault((code, ticket.category), []).append(ticket)
    return [
        Suggestion(code, category, tickets)
        for (code, category), tickets in sorted(groups.items())
        if len(tickets) >= conf.suggest_after_tickets
    ]


def statistics(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """Incidents started in [since, until): how many, how long they lasted, the contacts they
    absorbed (calls and emails without a ticket of their own) and the tickets they grouped."""
    incidents = list(
        session.scalars(
            select(Incident).where(Incident.starts_at >= since, Incident.starts_at < until)
        )
    )
    ids = [i.id for i in incidents]
    durations = [
        (i.resolved_at - i.starts_at).total_seconds() / 60
        for i in incidents
        if i.resolved_at is not None and i.resolved_at > i.starts_at
    ]
    absorbed = tickets = 0
    if ids:
        absorbed = (
            session.scalar(
                select(func.count())
                .select_from(IncidentContact)
                .where(IncidentContact.incident_id.in_(ids), IncidentContact.ticket_id.is_(None))
            )
            or 0
        )
        tickets = (
            session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.incident_id.in_(ids))
            )
            or 0
        )
    return {
        "incidents": len(incidents),
        "planned": sum(1 for i in incidents if i.kind == "planned"),
        "resolved": len(durations),
        "mean_minutes": round(sum(durations) / len(durations)) if durations else None,
        "contacts_absorbed": absorbed,
        "tickets_grouped": tickets,
    }


# --- a resident stops planned-works notices from the email itself ------------------------------

STOP_NOTICES = "stop-notices"


def stop_notices_token(secret: str, resident_id: int) -> str:
    """The token of a planned-works notice's stop link (and its List-Unsubscribe header)."""
    return signed(secret, f"{STOP_NOTICES}.{resident_id}")


def read_stop_notices_token(secret: str, token: str) -> int | None:
    payload = verified(secret, token)
    kind, _, resident_id = (payload or "").partition(".")
    return int(resident_id) if kind == STOP_NOTICES and resident_id.isdigit() else None


def stop_planned_notices(session: Session, resident: Resident, source: str | None) -> bool:
    """The resident asked, from a notice's link, for no more planned-works notices (incidents
    still reach them). Recorded in the audit log like the same choice made at the desk; False
    when it was already so."""
    if resident.notices_opt_out:
        return False
    resident.notices_opt_out = True
    audit.record(
        session,
        "resident_changed",
        actor=resident.name or f"resident {resident.id}",
        target=f"resident {resident.id}",
        source=source,
        changed={"notices_opt_out": (False, True)},
        via="notice link",
    )
    return True
