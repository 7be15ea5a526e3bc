"""The OpenAPI 3 document of the API, built from the same configuration the views check against."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from intake.config import LANGUAGES
from intake.contact import CHANNELS
from intake.tickets import STATUSES
from web.api.auth import ROLE_SCOPES
from web.api.common import MAX_LIMIT, MAX_VALUES, bp, config
from web.api.resources import CALLBACK_STATUSES, MAX_CONTACT_POINTS
from web.api.tickets import EMAIL_PATTERN, SORTS
from web.filters import PRIORITIES, SLA_STATES

NON_BLANK = r"\S"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


STR = {"type": "string"}
NSTR = _nullable(STR)
TIME = {"type": "string", "format": "date-time"}
NTIME = _nullable(TIME)
OBJ = {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": _nullable(
                {"type": "string", "description": "pass as `cursor` for the next page"}
            ),
        },
    }


def _array_param(name: str, description: str, enum: list[str] | None = None) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "string", "minLength": 1}
    if enum is not None:
        items = {"type": "string", "enum": enum}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Repeat the parameter for several values.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": items, "maxItems": MAX_VALUES},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    "Page size.",
)
CURSOR = _query(
    "cursor",
    {"type": "string"},
    "Opaque cursor from the previous page's `next_cursor`; a cursor of another list is a 400.",
)
AUTH_ERRORS = {
    "400": _error("Invalid input"),
    "401": _error("Missing or invalid bearer token"),
    "403": _error("The client's role lacks the scope"),
}
BODY_ERRORS = {
    **AUTH_ERRORS,
    "404": _error("No such ticket (or not in the client's department)"),
    "415": _error("The body is not application/json"),
}


def _schemas(categories: list[str], departments: list[str]) -> dict[str, Any]:
    resident = {
        "type": "object",
        "required": ["id", "name", "language", "unit", "contact_points"],
        "properties": {
            "id": {"type": "integer"},
            "name": NSTR,
            "language": NSTR,
            "unit": _nullable({"type": "string", "description": "building code and unit label"}),
            "contact_points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "value", "unreachable"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["phone", "email"]},
                        "value": STR,
                        "unreachable": {"type": "boolean"},
                    },
                },
            },
        },
    }
    ticket_props: dict[str, Any] = {
        "ref": {"type": "string", "example": "HL-000123"},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "category": STR,
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "status": {"type": "string", "enum": list(STATUSES)},
        "escalated": {"type": "boolean"},
        "department": _nullable({"type": "string", "description": "department code"}),
        "assignee": _nullable({"type": "string", "description": "operator email"}),
        "language": STR,
        "subject": STR,
        "description": STR,
        "contact_phone": NSTR,
        "contact_email": NSTR,
        "resident": _nullable(_ref("Resident")),
        "satisfaction": _nullable({"type": "integer"}),
        "first_response_due_at": NTIME,
        "resolution_due_at": NTIME,
        "created_at": TIME,
        "updated_at": TIME,
    }
    interaction = {
        "type": "object",
        "required": ["id", "kind", "direction", "channel", "body_text", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "kind": STR,
            "direction": {"type": "string", "enum": ["in", "out", "internal"]},
            "channel": STR,
            "sender": NSTR,
            "subject": NSTR,
            "body_text": STR,
            "external_id": NSTR,
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "filename": STR,
                        "content_type": STR,
                        "size": {"type": "integer"},
                        "external_id": NSTR,
                    },
                },
            },
            "meta": OBJ,
            "created_at": TIME,
        },
    }
    event = {
        "type": "object",
        "required": ["kind", "actor", "message", "created_at"],
        "properties": {
            "kind": STR,
            "actor": {"type": "string", "description": "who: an operator email, api:NAME, rule:…"},
            "message": STR,
            "data": OBJ,
            "created_at": TIME,
        },
    }
    callback = {
        "type": "object",
        "required": ["id", "ticket_ref", "purpose", "due_at", "status", "attempts"],
        "properties": {
            "id": {"type": "integer"},
            "ticket_ref": STR,
            "phone": NSTR,
            "email": NSTR,
            "purpose": STR,
            "due_at": TIME,
            "queued_at": NTIME,
            "status": STR,
            "attempts": {"type": "integer"},
            "outcome": NSTR,
        },
    }
    outgoing = {
        "type": "object",
        "required": ["id", "ticket_ref", "channel", "to", "body_text", "status", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "ticket_ref": NSTR,
            "channel": STR,
            "to": STR,
            "subject": NSTR,
            "body_text": STR,
            "message_id": NSTR,
            "in_reply_to": NSTR,
            "headers": OBJ,
            "status": STR,
            "created_at": TIME,
        },
    }
    update = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "status": {
                "type": "string",
                "enum": list(STATUSES),
                "description": "`resolved` needs a resolution_note (in this request or earlier)",
            },
            "priority": {"type": "string", "enum": list(PRIORITIES)},
            "category": {"type": "string", "enum": categories},
            "department": _nullable({"type": "string", "enum": [*departments, None]}),
            "assignee": _nullable(
                {"type": "string", "description": "email of an active operator; null unassigns"}
            ),
            "resolution_note": {
                "type": "string",
                "maxLength": 4000,
                "description": "internal: staff only, never published",
            },
            "public_note": {
                "type": "string",
                "maxLength": 4000,
                "description": "the answer to the resident: sent in the resolved message and "
                "published as Open311's status_notes",
            },
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": STR, "message": STR},
                }
            },
        },
        "Resident": resident,
        "Ticket": {
            "type": "object",
            "required": list(ticket_props),
            "properties": ticket_props,
        },
        "TicketDetail": {
            "type": "object",
            "required": [*ticket_props, "timeline", "events", "callbacks"],
            "properties": {
                **ticket_props,
                "timeline": {"type": "array", "items": _ref("Interaction")},
                "events": {"type": "array", "items": _ref("Event")},
                "callbacks": {"type": "array", "items": _ref("Callback")},
            },
        },
        "Interaction": interaction,
        "Event": event,
        "Callback": callback,
        "OutgoingMessage": outgoing,
        "TicketPage": _page("Ticket"),
        "CallbackPage": _page("Callback"),
        "ResidentPage": _page("Resident"),
        "TicketUpdate": update,
        "NewNote": {
            "type": "object",
            "additionalProperties": False,
            "required": ["text"],
            "properties": {"text": {"type": "string", "pattern": NON_BLANK, "maxLength": 20000}},
        },
        "NewReply": {
            "type": "object",
            "additionalProperties": False,
            "required": ["body"],
            "properties": {
                "body": {"type": "string", "pattern": NON_BLANK, "maxLength": 50000},
                "to": {
                    "type": "string",
                    "pattern": EMAIL_PATTERN.pattern,
                    "maxLength": 254,
                    "description": "defaults to the ticket's contact email",
                },
                "subject": {"type": "string", "maxLength": 300},
            },
        },
        "NewResident": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": NON_BLANK, "maxLength": 200},
                "language": {"type": "string", "enum": list(LANGUAGES)},
                "building": {
                    "type": "string",
                    "maxLength": 40,
                    "description": "code of an existing building; needs `unit`",
                },
                "unit": {"type": "string", "maxLength": 40, "description": "unit label"},
                "phones": {
                    "type": "array",
                    "maxItems": MAX_CONTACT_POINTS,
                    "items": {"type": "string"},
                    "description": "normalized to E.164 in the configured region",
                },
                "emails": {
                    "type": "array",
                    "maxItems": MAX_CONTACT_POINTS,
                    "items": {"type": "string", "pattern": EMAIL_PATTERN.pattern},
                },
                "notes": {"type": "string", "maxLength": 4000},
            },
        },
    }


def document() -> dict[str, Any]:
    conf = config()
    categories = [c.code for c in conf.categories]
    departments = [d.code for d in conf.departments]
    ref_param = {
        "name": "ref",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "Ticket reference, e.g. HL-000123",
    }

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}

    ticket_filters = [
        _array_param(
            "status", "Default: the open statuses; `all` for every status.", [*STATUSES, "all"]
        ),
        _array_param("channel", "Channel of first contact.", list(CHANNELS)),
        _array_param("category", "Category code.", categories),
        _array_param("department", "Department code.", departments),
        _array_param("priority", "Priority.", list(PRIORITIES)),
        _array_param("building", "Building code."),
        _query(
            "sla",
            {"type": "string", "enum": list(SLA_STATES)},
            "Open tickets whose SLA is at risk (due within 2 hours) or breached.",
        ),
        _query("assignee", {"type": "string"}, "Email of the assigned operator."),
        _query("unassigned", {"type": "boolean"}, "Only tickets nobody is assigned to."),
        _query(
            "q",
            {"type": "string"},
            "Reference, subject, phone or email contains (first 100 characters).",
        ),
        _query(
            "sort",
            {"type": "string", "enum": list(SORTS), "default": "urgency"},
            "urgency: priority then resolution due time; newest: creation time.",
        ),
        LIMIT,
        CURSOR,
    ]
    paths: dict[str, Any] = {
        "/tickets": {
            "get": {
                "operationId": "listTickets",
                "summary": "Tickets, most urgent first, with the queue's filters",
                "parameters": ticket_filters,
                "responses": {
                    "200": _json("A page of tickets", _ref("TicketPage")),
                    **AUTH_ERRORS,
                },
            }
        },
        "/tickets/{ref}": {
            "parameters": [ref_param],
            "get": {
                "operationId": "getTicket",
                "summary": "A ticket with its timeline, events and callbacks",
                "responses": {
                    "200": _json("The ticket", _ref("TicketDetail")),
                    **AUTH_ERRORS,
                    "404": _error("No such ticket (or not in the client's department)"),
                },
            },
            "patch": {
                "operationId": "updateTicket",
                "summary": "Change status, priority, category, department or assignee",
                "requestBody": body("TicketUpdate"),
                "responses": {"200": _json("The updated ticket", _ref("Ticket")), **BODY_ERRORS},
            },
        },
        "/tickets/{ref}/notes": {
            "parameters": [ref_param],
            "post": {
                "operationId": "addNote",
                "summary": "An internal note on the ticket's timeline",
                "requestBody": body("NewNote"),
                "responses": {"201": _json("The note", _ref("Interaction")), **BODY_ERRORS},
            },
        },
        "/tickets/{ref}/replies": {
            "parameters": [ref_param],
            "post": {
                "operationId": "addReply",
                "summary": "An email reply to the resident, sent by the worker",
                "requestBody": body("NewReply"),
                "responses": {
                    "201": _json("The queued message", _ref("OutgoingMessage")),
                    **BODY_ERRORS,
                },
            },
        },
        "/callbacks": {
            "get": {
                "operationId": "listCallbacks",
                "summary": "Callbacks, soonest due first",
                "parameters": [
                    _array_param("status", "Callback status.", list(CALLBACK_STATUSES)),
                    _array_param("ticket", "Ticket reference."),
                    LIMIT,
                    CURSOR,
                ],
                "responses": {
                    "200": _json("A page of callbacks", _ref("CallbackPage")),
                    **AUTH_ERRORS,
                },
            }
        },
        "/callbacks/{id}": {
            "get": {
                "operationId": "getCallback",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "200": _json("The callback", _ref("Callback")),
                    **AUTH_ERRORS,
                    "404": _error("No such callback"),
                },
            }
        },
        "/residents": {
            "get": {
                "operationId": "listResidents",
                "parameters": [
                    _query("q", {"type": "string"}, "Name, phone or email contains."),
                    _array_param("building", "Building code."),
                    LIMIT,
                    CURSOR,
                ],
                "responses": {
                    "200": _json("A page of residents", _ref("ResidentPage")),
                    **AUTH_ERRORS,
                },
            },
            "post": {
                "operationId": "createResident",
                "requestBody": body("NewResident"),
                "responses": {
                    "201": {
                        "description": "The new resident",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": _ref("Resident")}},
                    },
                    **AUTH_ERRORS,
                    "409": _error("A phone or email already belongs to a resident"),
                    "415": _error("The body is not application/json"),
                },
            },
        },
        "/residents/{id}": {
            "get": {
                "operationId": "getResident",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "200": _json("The resident", _ref("Resident")),
                    **AUTH_ERRORS,
                    "404": _error("No such resident"),
                },
            }
        },
    }
    roles = "; ".join(f"`{r}`: {', '.join(sorted(s))}" for r, s in ROLE_SCOPES.items())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Hotline API",
            "version": "1.0.0",
            "description": (
                "Tickets, callbacks and residents of the Hotline customer-service centre. "
                "Authenticate with `Authorization: Bearer <token>` (`hotline api-token create`). "
                f'Roles and scopes: {roles}. Errors are `{{"error": {{"code", "message"}}}}`.'
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(categories, departments),
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> object:
    return jsonify(document())
