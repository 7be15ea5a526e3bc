"""Tickets over the API: the queue's filters and order, the whole story, changes with an actor."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import g, jsonify
from sqlalchemy import JSON, Row, Select, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from intake import lifecycle
from intake.config import HotlineConfig
from intake.models import (
    Building,
    ContactPoint,
    Department,
    Interaction,
    Operator,
    Resident,
    Ticket,
    Unit,
    utcnow,
)
from intake.phrases import render
from intake.replies import queue_reply
from intake.serialize import (
    TICKET_JSON_KEYS,
    interaction_json,
    outgoing_json,
    resident_fields_json,
    ticket_detail_json,
    ticket_json,
    ticket_times_json,
)
from intake.tickets import (
    change_category,
    change_department,
    change_priority,
    department_by_code,
    record_event,
)
from web.api import models
from web.api.common import (
    ApiError,
    actor,
    bp,
    config,
    current_client,
    decode_cursor,
    page_response,
    visible,
)
from web.api.operations import operation
from web.db import read_only
from web.filters import QueueFilter, page, with_names
from web.filters import decode_cursor as console_cursor
from web.lookups import department_ids

REF = {"ref": "Ticket reference, e.g. HL-000123"}
NO_TICKET = (models.Error, "No such ticket (or not in the client's department)")


def _checked_cursor(cursor: str | None, sort: str) -> str | None:
    """Reject a cursor that does not fit the order asked for (it would otherwise mean page one):
    the console's strict decoding (typed, ids in range, moments with an offset) and the shape."""
    if not cursor:
        return None
    decode_cursor(cursor)  # the API's own checks: base64 JSON list, else a 400
    key = console_cursor(cursor)
    if key is None or len(key) != (2 if sort == "newest" else 3):
        raise ApiError(400, "invalid_cursor", "the cursor does not fit this order")
    return cursor


def ticket_filter(query: models.TicketQuery) -> QueueFilter:
    """The queue's filter for a validated query string."""
    if "all" in query.status:
        statuses = []
    elif not query.status:
        statuses = list(QueueFilter().statuses)
    else:
        statuses = query.status
    return QueueFilter(
        statuses=statuses,
        channels=query.channel,
        categories=query.category,
        departments=query.department,
        priorities=query.priority,
        buildings=query.building,
        sla=query.sla or "",
        assigned="none" if query.unassigned else "",
        q=query.q or "",
        sort=query.sort,
    )


@cache
def list_query(dialect: str) -> Select[*tuple[Any, ...]]:
    """Exactly the columns the list returns, with the names they need, in one statement.

    Built once per dialect: a statement is immutable, and building it costs more than running it.
    The ticket's own columns come last, in the order of its JSON; the resident's id stands where
    the resident goes.
    """
    return with_names(
        select(
            Ticket.id,
            Resident.name.label("resident_name"),
            Resident.language.label("resident_language"),
            Building.code.label("building"),
            Unit.label.label("unit"),
            _contact_points(dialect),
            Ticket.ref,
            Ticket.channel,
            Ticket.category,
            Ticket.priority,
            Ticket.status,
            Ticket.escalated,
            Department.code.label("department"),
            Operator.email.label("assignee"),
            Ticket.language,
            Ticket.subject,
            Ticket.description,
            Ticket.contact_phone,
            Ticket.contact_email,
            Ticket.resident_id,
            Ticket.satisfaction,
            Ticket.first_response_due_at,
            Ticket.resolution_due_at,
            Ticket.created_at,
            Ticket.updated_at,
        ),
        Resident.unit_id,
    )


def _contact_points(dialect: str) -> Any:
    """The resident's contact points as a JSON array, so the page stays one statement."""
    point = (ContactPoint.kind, ContactPoint.value, ContactPoint.unreachable)
    if dialect == "postgresql":
        fields = func.json_build_object(
            "kind", point[0], "value", point[1], "unreachable", point[2]
        )
        points = func.json_agg(aggregate_order_by(fields, ContactPoint.id), type_=JSON)
    else:
        # SQLite 3.40 has no ORDER BY in aggregates; it reads them by the resident_id index, in id order.
        points = func.json_group_array(
            func.json_object("kind", point[0], "value", point[1], "unreachable", point[2]),
            type_=JSON,
        )
    return (
        select(points)
        .where(ContactPoint.resident_id == Resident.id)
        .scalar_subquery()
        .label("contact_points")
    )


def _row_json(row: Row[*tuple[Any, ...]], conf: HotlineConfig) -> dict[str, Any]:
    """Unpacked by position: attribute lookups on a Row cost more than building the JSON."""
    _id, name, language, building, unit, points, *values = row
    data = dict(zip(TICKET_JSON_KEYS, values, strict=True))
    resident_id = data["resident"]
    if resident_id is not None:
        data["resident"] = resident_fields_json(
            resident_id,
            name,
            language,
            f"{building} {unit}" if unit is not None else None,
            [
                {"kind": p["kind"], "value": p["value"], "unreachable": bool(p["unreachable"])}
                for p in points or ()
            ],
        )
    return ticket_times_json(data, conf)


@bp.get("/tickets")
@read_only
@operation(
    "listTickets",
    "tickets:read",
    summary="Tickets, most urgent first, with the queue's filters",
    query=models.TicketQuery,
    responses={200: (models.TicketPage, "A page of tickets")},
)
def list_tickets(query: models.TicketQuery) -> Any:
    flt = ticket_filter(query)
    limit = query.limit
    cursor = _checked_cursor(query.cursor, flt.sort)
    dialect = g.db.get_bind().dialect.name
    ids = department_ids(g.db, flt.departments)
    email = query.assignee.strip().lower() if query.assignee else None

    def build() -> Select[*tuple[Any, ...]]:
        statement = visible(flt.apply(list_query(dialect), None, ids))
        if email:
            statement = statement.where(
                Ticket.assignee_id.in_(
                    select(Operator.id).where(Operator.email == email).correlate(None)
                )
            )
        return statement

    scope = ("api", dialect, current_client().department_id, tuple(ids), email)
    rows, next_cursor = page(g.db.connection(), build, flt, cursor, limit, key=scope)
    conf = config()
    return page_response([_row_json(r, conf) for r in rows], next_cursor)


def load_ticket(ref: str) -> Ticket:
    ticket = g.db.scalar(visible(select(Ticket).where(Ticket.ref == ref)))
    if ticket is None:
        raise ApiError(404, "not_found", f"no ticket {ref}")
    return ticket


@bp.get("/tickets/<ref>")
@operation(
    "getTicket",
    "tickets:read",
    summary="A ticket with its timeline, events and callbacks",
    path_parameters=REF,
    responses={200: (models.TicketDetail, "The ticket"), 404: NO_TICKET},
)
def get_ticket(ref: str) -> Any:
    return jsonify(ticket_detail_json(load_ticket(ref), config()))


@bp.patch("/tickets/<ref>")
@operation(
    "updateTicket",
    "tickets:write",
    summary="Change status, priority, category, department or assignee",
    path_parameters=REF,
    body=models.TicketUpdate,
    responses={200: (models.Ticket, "The updated ticket"), 404: NO_TICKET},
)
def update_ticket(ref: str, body: models.TicketUpdate) -> Any:
    """Every field is checked before anything changes; each change writes an event."""
    ticket = load_ticket(ref)
    conf = config()
    given = body.model_fields_set
    status, priority, category = body.status, body.priority, body.category
    note, public = body.resolution_note, body.public_note
    if status == "resolved" and not (note or ticket.resolution_note):
        raise ApiError(400, "missing_field", "resolving a ticket needs a resolution_note")
    dept_change = "department" in given
    dept: Department | None = None
    if dept_change:
        if body.department:
            dept = department_by_code(g.db, body.department, conf)
        if current_client().department_id is not None and (
            dept is None or dept.id != current_client().department_id
        ):
            raise ApiError(
                403, "forbidden", "this client may not move tickets out of its department"
            )
    assignee_change = "assignee" in given
    assignee: Operator | None = None
    if assignee_change and body.assignee:
        email = body.assignee
        assignee = g.db.scalar(select(Operator).where(Operator.email == email.lower()))
        if assignee is None or not assignee.active:
            raise ApiError(400, "invalid_field", f"no active operator {email!r}")

    who = actor()
    if category is not None:
        change_category(g.db, ticket, category, actor=who)
    if priority is not None:
        change_priority(g.db, ticket, priority, actor=who)
    if (
        dept_change
        and change_department(g.db, ticket, dept, actor=who)
        and ticket.status == "new"
        and dept is not None
        and status is None
    ):
        lifecycle.route_by_hand(g.db, ticket, actor=who)
    if assignee_change and (assignee.id if assignee else None) != ticket.assignee_id:
        record_event(
            g.db,
            ticket,
            "assigned",
            assignee.email if assignee else "unassigned",
            actor=who,
            assignee=assignee.email if assignee else None,
        )
        ticket.assignee = assignee
    if status is not None and status != ticket.status:
        try:
            if status == "resolved":
                lifecycle.resolve(
                    g.db,
                    ticket,
                    note or ticket.resolution_note or "",
                    actor=who,
                    config=conf,
                    public_note=public,
                )
            else:
                lifecycle.change(g.db, ticket, status, actor=who, config=conf)
        except lifecycle.TransitionRefused as refused:
            g.db.rollback()
            raise ApiError(400, refused.code, refused.message) from None
    if public is not None and public != (ticket.public_note or ""):
        ticket.public_note = public or None
        record_event(g.db, ticket, "public_note", public[:200], actor=who)
    if note is not None and note != ticket.resolution_note:
        ticket.resolution_note = note
        record_event(g.db, ticket, "resolution_note", note[:200], actor=who)
    ticket.updated_at = utcnow()
    g.db.commit()
    g.db.refresh(ticket)
    return jsonify(ticket_json(ticket, conf))


@bp.post("/tickets/<ref>/notes")
@operation(
    "addNote",
    "tickets:write",
    summary="An internal note on the ticket's timeline",
    path_parameters=REF,
    body=models.NewNote,
    responses={201: (models.Interaction, "The note"), 404: NO_TICKET},
)
def add_note(ref: str, body: models.NewNote) -> Any:
    text = body.text
    ticket = load_ticket(ref)
    item = Interaction(
        ticket_id=ticket.id,
        kind="note",
        direction="internal",
        channel="api",
        sender=actor(),
        body_text=text,
        meta={},
        created_at=utcnow(),
    )
    g.db.add(item)
    record_event(g.db, ticket, "note_added", text[:200], actor=actor())
    g.db.commit()
    g.db.refresh(item)
    return jsonify(interaction_json(item, config())), 201


def _default_recipient(ticket: Ticket) -> str | None:
    if ticket.contact_email:
        return ticket.contact_email
    if ticket.resident is not None:
        for cp in ticket.resident.contact_points:
            if cp.kind == "email" and not cp.unreachable:
                return cp.value
    return None


@bp.post("/tickets/<ref>/replies")
@operation(
    "addReply",
    "tickets:write",
    summary="An email reply to the resident, sent by the worker",
    path_parameters=REF,
    body=models.NewReply,
    responses={201: (models.OutgoingMessage, "The queued message"), 404: NO_TICKET},
)
def add_reply(ref: str, body: models.NewReply) -> Any:
    """An email to the resident: stored first, sent by the worker once this commits."""
    ticket = load_ticket(ref)
    to = body.to or _default_recipient(ticket)
    if to is None:
        raise ApiError(400, "missing_field", "the ticket has no email address; give `to`")
    subject = body.subject or render(
        "reply_email_subject", ticket.language, subject=ticket.subject, ref=ticket.ref
    )
    message = queue_reply(
        g.db,
        ticket,
        to=to,
        subject=subject,
        body=body.body,
        actor=actor(),
        headers={"api_client": current_client().name},
    )
    g.db.commit()
    return jsonify(outgoing_json(message, g.db, config())), 201
