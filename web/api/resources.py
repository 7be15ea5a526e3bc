"""Callbacks (read) and residents (read, create) over the API."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from intake.config import LANGUAGES
from intake.models import Building, Callback, ContactPoint, Resident, Ticket, Unit, utcnow
from intake.phones import normalize_email, normalize_phone
from intake.residents import add_contact_point, unit_for
from intake.serialize import callback_json, resident_json
from web.api.common import (
    ApiError,
    bp,
    check_fields,
    config,
    current_client,
    decode_cursor,
    encode_cursor,
    json_body,
    page_response,
    query_limit,
    query_list,
    require,
    text_field,
)
from web.api.tickets import EMAIL_PATTERN, _aware

CALLBACK_STATUSES = ("scheduled", "in_progress", "done", "failed", "cancelled")
MAX_CONTACT_POINTS = 10
MAX_ID = 2**31 - 1


def _visible_callbacks(query: Any) -> Any:
    client = current_client()
    if client.department_id is not None:
        query = query.where(
            Callback.ticket_id.in_(
                select(Ticket.id).where(Ticket.department_id == client.department_id)
            )
        )
    return query


@bp.get("/callbacks")
@require("callbacks:read")
def list_callbacks() -> Any:
    """Soonest due first; keyset pages on (due_at, id)."""
    statuses = query_list("status", CALLBACK_STATUSES)
    refs = query_list("ticket")
    limit = query_limit()
    query = _visible_callbacks(select(Callback)).options(selectinload(Callback.ticket))
    if statuses:
        query = query.where(Callback.status.in_(statuses))
    if refs:
        query = query.where(Callback.ticket_id.in_(select(Ticket.id).where(Ticket.ref.in_(refs))))
    cursor = request.args.get("cursor")
    if cursor:
        key = decode_cursor(cursor)
        try:
            if len(key) != 2 or isinstance(key[1], bool):
                raise ValueError("shape")
            due, ident = _aware(key[0]), key[1]
            if not isinstance(ident, int) or not 0 <= ident <= MAX_ID:
                raise ValueError("id")
        except (ValueError, TypeError, OverflowError):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued") from None
        query = query.where(
            or_(Callback.due_at > due, and_(Callback.due_at == due, Callback.id > ident))
        )
    rows = list(g.db.scalars(query.order_by(Callback.due_at, Callback.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.due_at.isoformat(), last.id])
    conf = config()
    return page_response([callback_json(c, conf) for c in rows[:limit]], next_cursor)


@bp.get("/callbacks/<int:callback_id>")
@require("callbacks:read")
def get_callback(callback_id: int) -> Any:
    if callback_id > MAX_ID:
        raise ApiError(404, "not_found", f"no callback {callback_id}")
    cb = g.db.scalar(_visible_callbacks(select(Callback).where(Callback.id == callback_id)))
    if cb is None:
        raise ApiError(404, "not_found", f"no callback {callback_id}")
    return jsonify(callback_json(cb, config()))


def _visible_residents(query: Any) -> Any:
    """A department-scoped client sees the residents who have a ticket in its department."""
    client = current_client()
    if client.department_id is not None:
        query = query.where(
            Resident.id.in_(
                select(Ticket.resident_id).where(
                    Ticket.department_id == client.department_id,
                    Ticket.resident_id.is_not(None),
                )
            )
        )
    return query


def _resident_options() -> list[Any]:
    return [
        selectinload(Resident.unit).selectinload(Unit.building),
        selectinload(Resident.contact_points),
    ]


@bp.get("/residents")
@require("residents:read")
def list_residents() -> Any:
    """By id; `q` matches a name or a phone / email, `building` a building code."""
    limit = query_limit()
    query = _visible_residents(select(Resident)).options(*_resident_options())
    q = (request.args.get("q") or "").strip()[:100].replace("\x00", "")
    if q:
        needle = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(
            or_(
                Resident.name.ilike(needle),
                Resident.id.in_(
                    select(ContactPoint.resident_id).where(ContactPoint.value.ilike(needle))
                ),
            )
        )
    buildings = query_list("building")
    if buildings:
        query = query.where(
            Resident.unit_id.in_(select(Unit.id).join(Building).where(Building.code.in_(buildings)))
        )
    cursor = request.args.get("cursor")
    if cursor:
        key = decode_cursor(cursor)
        if (
            len(key) != 1
            or not isinstance(key[0], int)
            or isinstance(key[0], bool)
            or not 0 <= key[0] <= MAX_ID
        ):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
        query = query.where(Resident.id > key[0])
    rows = list(g.db.scalars(query.order_by(Resident.id).limit(limit + 1)))
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return page_response([resident_json(r) for r in rows[:limit]], next_cursor)  # type: ignore[misc]


@bp.get("/residents/<int:resident_id>")
@require("residents:read")
def get_resident(resident_id: int) -> Any:
    if resident_id > MAX_ID:
        raise ApiError(404, "not_found", f"no resident {resident_id}")
    resident = g.db.scalar(
        _visible_residents(select(Resident).where(Resident.id == resident_id)).options(
            *_resident_options()
        )
    )
    if resident is None:
        raise ApiError(404, "not_found", f"no resident {resident_id}")
    return jsonify(resident_json(resident))


def _string_list(data: dict[str, Any], name: str) -> list[str]:
    values = data.get(name)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ApiError(400, "invalid_field", f"{name} must be a list of strings")
    if len(values) > MAX_CONTACT_POINTS:
        raise ApiError(400, "invalid_field", f"at most {MAX_CONTACT_POINTS} {name}")
    return values


@bp.post("/residents")
@require("residents:write")
def create_resident() -> Any:
    """A resident with a unit and contact points; a phone or email already on file is a 409.

    A department-scoped client may not create residents (403): a new resident has no ticket in
    any department, so it could never read back what it wrote, and the 409 on a phone or email
    already on file would tell it who else lives here."""
    if current_client().department_id is not None:
        raise ApiError(403, "forbidden", "a department-scoped client cannot create residents")
    data = json_body()
    check_fields(data, {"name", "language", "building", "unit", "phones", "emails", "notes"})
    conf = config()
    name = text_field(data, "name", required=True, max_length=200, single_line=True)
    language = text_field(data, "language") or conf.default_language
    if language not in LANGUAGES:
        raise ApiError(400, "invalid_field", f"language must be one of {', '.join(LANGUAGES)}")
    building = text_field(data, "building", max_length=40, single_line=True)
    label = text_field(data, "unit", max_length=40, single_line=True)
    if bool(building) != bool(label):
        raise ApiError(400, "invalid_field", "building and unit go together")
    notes = text_field(data, "notes", max_length=4000)
    points: list[tuple[str, str]] = []
    for raw in _string_list(data, "phones"):
        phone = normalize_phone(raw.replace("\x00", ""), conf.phone_region)
        if phone is None:
            raise ApiError(400, "invalid_field", f"{raw!r} is not a phone number")
        points.append(("phone", phone))
    for raw in _string_list(data, "emails"):
        email = normalize_email(raw)
        if email is None or not EMAIL_PATTERN.match(email) or len(email) > 254:
            raise ApiError(400, "invalid_field", f"{raw!r} is not an email address")
        points.append(("email", email))
    points = list(dict.fromkeys(points))
    for kind, value in points:
        taken = g.db.scalar(
            select(ContactPoint.resident_id).where(
                ContactPoint.kind == kind, ContactPoint.value == value
            )
        )
        if taken is not None:
            raise ApiError(409, "conflict", f"{kind} {value} already belongs to resident {taken}")
    if building and label:
        if g.db.scalar(select(Building.id).where(Building.code == building)) is None:
            raise ApiError(400, "invalid_field", f"unknown building {building!r}")
        unit = unit_for(g.db, building, label)
    else:
        unit = None
    resident = Resident(
        name=name,
        language=language,
        unit_id=unit.id if unit else None,
        notes=notes,
        created_at=utcnow(),
    )
    g.db.add(resident)
    g.db.flush()
    for kind, value in points:
        add_contact_point(g.db, resident, kind, value)
    try:
        g.db.commit()
    except IntegrityError:
        g.db.rollback()
        raise ApiError(
            409, "conflict", "a phone or email was just given to another resident"
        ) from None
    resident = g.db.scalar(
        select(Resident).where(Resident.id == resident.id).options(*_resident_options())
    )
    response = jsonify(resident_json(resident))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/residents/{resident.id}"  # type: ignore[union-attr]
    return response
