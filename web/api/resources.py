"""Callbacks (read) and residents (read, create) over the API."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from intake.models import Building, Callback, ContactPoint, Resident, Ticket, Unit, utcnow
from intake.phones import normalize_phone
from intake.residents import add_contact_point, unit_for
from intake.serialize import callback_json, resident_json
from web.api import models
from web.api.common import (
    ApiError,
    aware_moment,
    bp,
    config,
    current_client,
    decode_cursor,
    encode_cursor,
    page_response,
)
from web.api.operations import operation

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
@operation(
    "listCallbacks",
    "callbacks:read",
    summary="Callbacks, soonest due first",
    query=models.CallbackQuery,
    responses={200: (models.CallbackPage, "A page of callbacks")},
)
def list_callbacks(query: models.CallbackQuery) -> Any:
    """Soonest due first; keyset pages on (due_at, id)."""
    statuses, refs, limit, cursor = query.status, query.ticket, query.limit, query.cursor
    rows_query = _visible_callbacks(select(Callback)).options(
        selectinload(Callback.ticket), selectinload(Callback.claimer)
    )
    if statuses:
        rows_query = rows_query.where(Callback.status.in_(statuses))
    if refs:
        rows_query = rows_query.where(
            Callback.ticket_id.in_(select(Ticket.id).where(Ticket.ref.in_(refs)))
        )
    if cursor:
        key = decode_cursor(cursor)
        try:
            if len(key) != 2 or isinstance(key[1], bool):
                raise ValueError("shape")
            due, ident = aware_moment(key[0]), key[1]
            if not isinstance(ident, int) or not 0 <= ident <= MAX_ID:
                raise ValueError("id")
        except (ValueError, TypeError, OverflowError):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued") from None
        rows_query = rows_query.where(
            or_(Callback.due_at > due, and_(Callback.due_at == due, Callback.id > ident))
        )
    rows = list(g.db.scalars(rows_query.order_by(Callback.due_at, Callback.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.due_at.isoformat(), last.id])
    conf = config()
    return page_response([callback_json(c, conf) for c in rows[:limit]], next_cursor)


@bp.get("/callbacks/<int:id>")
@operation(
    "getCallback",
    "callbacks:read",
    path_parameters={"id": "The callback's id"},
    responses={200: (models.Callback, "The callback"), 404: (models.Error, "No such callback")},
)
def get_callback(id: int) -> Any:  # the name the document gives it
    callback_id = id
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
@operation(
    "listResidents",
    "residents:read",
    query=models.ResidentQuery,
    responses={200: (models.ResidentPage, "A page of residents")},
)
def list_residents(query: models.ResidentQuery) -> Any:
    """By id; `q` matches a name or a phone / email, `building` a building code."""
    limit = query.limit
    rows_query = _visible_residents(select(Resident)).options(*_resident_options())
    q = query.q
    if q:
        needle = f"%{q.replace('%', '').replace('_', '')}%"
        rows_query = rows_query.where(
            or_(
                Resident.name.ilike(needle),
                Resident.id.in_(
                    select(ContactPoint.resident_id).where(ContactPoint.value.ilike(needle))
                ),
            )
        )
    if query.building:
        rows_query = rows_query.where(
            Resident.unit_id.in_(
                select(Unit.id).join(Building).where(Building.code.in_(query.building))
            )
        )
    cursor = query.cursor
    if cursor:
        key = decode_cursor(cursor)
        if (
            len(key) != 1
            or not isinstance(key[0], int)
            or isinstance(key[0], bool)
            or not 0 <= key[0] <= MAX_ID
        ):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
        rows_query = rows_query.where(Resident.id > key[0])
    rows = list(g.db.scalars(rows_query.order_by(Resident.id).limit(limit + 1)))
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return page_response([resident_json(r) for r in rows[:limit]], next_cursor)


@bp.get("/residents/<int:id>")
@operation(
    "getResident",
    "residents:read",
    path_parameters={"id": "The resident's id"},
    responses={200: (models.Resident, "The resident"), 404: (models.Error, "No such resident")},
)
def get_resident(id: int) -> Any:  # the name the document gives it
    resident_id = id
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


@bp.post("/residents")
@operation(
    "createResident",
    "residents:write",
    body=models.NewResident,
    responses={
        201: (models.Resident, "The new resident"),
        409: (models.Error, "A phone or email already belongs to a resident"),
    },
    headers={201: {"Location": "Where the new resident can be read"}},
)
def create_resident(body: models.NewResident) -> Any:
    """A resident with a unit and contact points; a phone or email already on file is a 409.

    A department-scoped client may not create residents (403): a new resident has no ticket in
    any department, so it could never read back what it wrote, and the 409 on a phone or email
    already on file would tell it who else lives here."""
    if current_client().department_id is not None:
        raise ApiError(403, "forbidden", "a department-scoped client cannot create residents")
    conf = config()
    name = body.name
    language = body.language or conf.default_language
    building, label, notes = body.building, body.unit, body.notes
    points: list[tuple[str, str]] = []
    for raw in body.phones:
        phone = normalize_phone(raw.replace("\x00", ""), conf.phone_region)
        if phone is None:
            raise ApiError(400, "invalid_field", f"{raw!r} is not a phone number")
        points.append(("phone", phone))
    points += [("email", email) for email in body.emails]
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
    response.headers["Location"] = f"/api/v1/residents/{resident.id}"
    return response
