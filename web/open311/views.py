"""GeoReport v2 (frozen spec): services, requests GET/POST, requests/{id}, tokens, in XML and JSON.

Requests are tickets whose first contact came through Open311; other tickets are not visible here
(their references are guessable and their content private). POST files through
`intake.service.receive` like every other channel, idempotent on the client's `Idempotency-Key`.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake.config import HotlineConfig
from intake.constants import OPEN_STATUSES
from intake.contact import InboundContact
from intake.models import Interaction, Ticket, utcnow
from intake.phones import normalize_email, normalize_phone
from intake.serialize import iso
from intake.service import receive
from web.api.auth import Caller, client_for_token, scopes

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMAT = "<any(json, xml):fmt>"
MAX_REQUESTS = 1000
MAX_SPAN = timedelta(days=90)
MAX_DESCRIPTION = 4000
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._~-]{1,100}$")
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"


class Open311Error(Exception):
    def __init__(self, status: int, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.code = code or status


def _config() -> HotlineConfig:
    return current_app.config["HOTLINE_SETTINGS"].config


def _format_of_path(path: str) -> str:
    return "json" if path.split("?")[0].endswith(".json") else "xml"


def _xml(root: ET.Element) -> Response:
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, content_type="text/xml; charset=utf-8")


def _child(parent: ET.Element, tag: str, value: Any) -> None:
    node = ET.SubElement(parent, tag)
    if value is None:
        return
    node.text = ("true" if value else "false") if isinstance(value, bool) else str(value)


def render(fmt: str, items: list[dict[str, Any]], root_tag: str, item_tag: str) -> Response:
    """A JSON array, or XML `<root><item>…</item></root>` with one element per field."""
    if fmt == "json":
        response = jsonify(items)
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        return response
    root = ET.Element(root_tag)
    for item in items:
        node = ET.SubElement(root, item_tag)
        for key, value in item.items():
            if isinstance(value, list):
                holder = ET.SubElement(node, key)
                for entry in value:
                    _child(holder, key.rstrip("s") or key, entry)
            else:
                _child(node, key, value)
    return _xml(root)


def error_response(status: int, description: str, fmt: str, code: int | None = None) -> Response:
    items = [{"code": code or status, "description": description}]
    response = render(fmt, items, "errors", "error")
    response.status_code = status
    return response


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error) -> Response:
    return error_response(exc.status, exc.description, _format_of_path(request.path), exc.code)


@bp.before_request
def _check_request() -> None:
    if "\x00" in request.path or any(
        "\x00" in k or "\x00" in v for k, v in request.values.items(multi=True)
    ):
        raise Open311Error(400, "NUL characters are not allowed")
    wanted = _config().open311.jurisdiction_id
    given = request.values.get("jurisdiction_id")
    if wanted and given and given != wanted:
        raise Open311Error(404, f"jurisdiction_id {given!r} was not found")


def _service_name(config: HotlineConfig, code: str) -> str:
    category = config.category(code)
    if category is None:
        return code
    return category.names.get(config.default_language) or category.names.get("en") or code


def _service(config: HotlineConfig, code: str) -> dict[str, Any]:
    category = config.category(code)
    assert category is not None
    return {
        "service_code": category.code,
        "service_name": _service_name(config, code),
        "description": " / ".join(dict.fromkeys(category.names.values())),
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(category.keywords),
        "group": category.priority,
    }


@bp.get(f"/discovery.{FORMAT}")
def discovery(fmt: str) -> Response:
    base = request.host_url.rstrip("/") + "/open311/v2/"
    data: dict[str, Any] = {
        "changeset": "2026-11-29T00:00:00Z",
        "contact": _config().open311.contact,
        "key_service": "hotline api-token create --role open311",
        "endpoints": [
            {
                "specification": SPEC_URL,
                "url": base,
                "changeset": "2026-11-29T00:00:00Z",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    if fmt == "json":
        return jsonify(data)
    root = ET.Element("discovery")
    for key in ("changeset", "contact", "key_service"):
        _child(root, key, data[key])
    endpoints = ET.SubElement(root, "endpoints")
    for endpoint in data["endpoints"]:
        node = ET.SubElement(endpoints, "endpoint")
        for key in ("specification", "url", "changeset", "type"):
            _child(node, key, endpoint[key])
        formats = ET.SubElement(node, "formats")
        for value in endpoint["formats"]:
            _child(formats, "format", value)
    return _xml(root)


@bp.get(f"/services.{FORMAT}")
def services(fmt: str) -> Response:
    config = _config()
    items = [_service(config, c.code) for c in config.categories]
    return render(fmt, items, "services", "service")


@bp.get(f"/services/<code>.{FORMAT}")
def service_definition(code: str, fmt: str) -> Response:
    """No service has extra attributes (metadata is false), so there is no definition to give."""
    if _config().category(code) is None:
        raise Open311Error(404, f"service_code {code!r} was not found")
    raise Open311Error(404, f"service_code {code!r} has no attributes (metadata is false)")


def _first_open311(tickets: list[Ticket]) -> dict[int, Interaction]:
    if not tickets:
        return {}
    found: dict[int, Interaction] = {}
    rows = g.db.scalars(
        select(Interaction)
        .where(
            Interaction.ticket_id.in_([t.id for t in tickets]),
            Interaction.channel == "open311",
        )
        .order_by(Interaction.id)
    )
    for item in rows:
        found.setdefault(item.ticket_id, item)
    return found


def _incident_notice(ticket: Ticket, language: str) -> str | None:
    """A request in a building-wide incident: the incident's words and status (issue 17)."""
    if ticket.incident is None:
        return None
    from intake.incidents import text_for
    from intake.phrases import render

    incident = ticket.incident
    return render(
        "incident_service_notice",
        language,
        incident_text=text_for(incident, language),
        resolved=incident.status == "resolved",
    )


def _request_json(
    ticket: Ticket, first: Interaction | None, config: HotlineConfig
) -> dict[str, Any]:
    closed = ticket.status not in OPEN_STATUSES
    meta = (first.meta or {}) if first else {}
    location = meta.get("open311", {})
    lang = config.default_language
    updated = (
        (ticket.closed_at or ticket.resolved_at or ticket.updated_at)
        if closed
        else ticket.updated_at
    )
    return {
        "service_request_id": ticket.ref,
        "status": "closed" if closed else "open",
        # Only the public answer: the resolution note is internal and never leaves the staff.
        "status_notes": (ticket.public_note or None) if closed else None,
        "service_name": _service_name(config, ticket.category),
        "service_code": ticket.category,
        "description": ticket.description,
        "agency_responsible": ticket.department.name(lang) if ticket.department else None,
        "service_notice": _incident_notice(ticket, lang),
        "requested_datetime": iso(ticket.created_at, config),
        "updated_datetime": iso(updated, config),
        "expected_datetime": iso(
            ticket.incident.expected_end_at
            if ticket.incident is not None and ticket.incident.expected_end_at
            else ticket.resolution_due_at,
            config,
        )
        if not closed
        else None,
        "address": location.get("address_string"),
        "address_id": location.get("address_id"),
        "zipcode": location.get("zipcode"),
        "lat": location.get("lat"),
        "long": location.get("long"),
        "media_url": location.get("media_url"),
    }


def _requests_response(tickets: list[Ticket], fmt: str) -> Response:
    config = _config()
    firsts = _first_open311(tickets)
    items = [_request_json(t, firsts.get(t.id), config) for t in tickets]
    return render(fmt, items, "service_requests", "request")


def _comma_list(name: str) -> list[str]:
    raw = request.args.get(name) or ""
    return [v.strip() for v in raw.split(",") if v.strip()][:MAX_REQUESTS]


def _parse_date(name: str, config: HotlineConfig) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        # An unencoded "+08:00" arrives as " 08:00"; the date and time are joined by "T".
        moment = datetime.fromisoformat(raw.replace("z", "Z").replace(" ", "+"))
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C date-time such as 2026-01-31T09:00:00+08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=config.timezone)
    return moment


def _open311_tickets() -> Any:
    return (
        select(Ticket).where(Ticket.channel == "open311").options(selectinload(Ticket.department))
    )


@bp.get(f"/requests.{FORMAT}")
def list_requests(fmt: str) -> Response:
    config = _config()
    ids = _comma_list("service_request_id")
    if ids:
        rows = list(g.db.scalars(_open311_tickets().where(Ticket.ref.in_(ids)).order_by(Ticket.id)))
        return _requests_response(rows, fmt)
    query = _open311_tickets()
    codes = _comma_list("service_code")
    if codes:
        unknown = [c for c in codes if config.category(c) is None]
        if unknown:
            raise Open311Error(404, f"service_code {unknown[0]!r} was not found")
        query = query.where(Ticket.category.in_(codes))
    statuses = _comma_list("status")
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "status must be open, closed or open,closed")
    if statuses == ["open"]:
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    elif statuses == ["closed"]:
        query = query.where(Ticket.status.not_in(OPEN_STATUSES))
    start, end = _parse_date("start_date", config), _parse_date("end_date", config)
    if start is None:
        end = end or utcnow()
        start = end - MAX_SPAN
    elif end is None:
        end = start + MAX_SPAN
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > MAX_SPAN:
        raise Open311Error(400, "the span between start_date and end_date is at most 90 days")
    query = query.where(Ticket.created_at >= start, Ticket.created_at <= end)
    rows = list(
        g.db.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(MAX_REQUESTS))
    )
    return _requests_response(rows, fmt)


@bp.get(f"/requests/<request_id>.{FORMAT}")
def get_request(request_id: str, fmt: str) -> Response:
    ticket = g.db.scalar(_open311_tickets().where(Ticket.ref == request_id))
    if ticket is None:
        raise Open311Error(404, f"service_request_id {request_id!r} was not found")
    return _requests_response([ticket], fmt)


@bp.get(f"/tokens/<token>.{FORMAT}")
def get_token(token: str, fmt: str) -> Response:
    row = g.db.execute(
        select(Ticket.ref)
        .join(Interaction, Interaction.ticket_id == Ticket.id)
        .where(Interaction.channel == "open311", Interaction.external_id == _external_id(token))
    ).first()
    if row is None:
        raise Open311Error(404, f"token {token!r} was not found")
    return render(
        fmt, [{"service_request_id": row.ref, "token": token}], "service_requests", "request"
    )


def _external_id(token: str) -> str:
    return f"open311:{token}"


def _api_client() -> Caller:
    client = client_for_token(g.db, request.form.get("api_key"))
    if client is None or "open311" not in scopes(client):
        raise Open311Error(403, "Invalid api_key received -- can't proceed with create_request.")
    return client


def _float(name: str, low: float, high: float) -> float | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not low <= value <= high:
        raise Open311Error(400, f"{name} must be between {low} and {high}")
    return value


def _attributes() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, values in request.form.lists():
        match = re.fullmatch(r"attribute\[([^\]]{1,100})\](\[\])?", key)
        if match:
            found[match.group(1)] = values if match.group(2) else values[-1]
    return found


def _form_text(name: str, limit: int = 300) -> str | None:
    value = (request.form.get(name) or "").strip()
    if len(value) > limit:
        raise Open311Error(400, f"{name} is longer than {limit} characters")
    return value or None


@bp.post(f"/requests.{FORMAT}")
def create_request(fmt: str) -> Response:
    config = _config()
    client = _api_client()
    code = _form_text("service_code", 40)
    if not code:
        raise Open311Error(400, "service_code is required")
    if config.category(code) is None:
        raise Open311Error(404, f"service_code {code!r} was not found")
    lat, long = _float("lat", -90, 90), _float("long", -180, 180)
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long go together")
    address = _form_text("address_string", 500)
    address_id = _form_text("address_id", 100)
    if lat is None and not address and not address_id:
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    description = _form_text("description", MAX_DESCRIPTION) or ""
    email_raw, phone_raw = _form_text("email", 254), _form_text("phone", 40)
    email = normalize_email(email_raw) if email_raw else None
    if email_raw and email is None:
        raise Open311Error(400, "email is not an email address")
    phone = normalize_phone(phone_raw, config.phone_region) if phone_raw else None
    if phone_raw and phone is None:
        raise Open311Error(400, "phone is not a phone number")
    key = request.headers.get("Idempotency-Key", "").strip()
    if key and not IDEMPOTENCY_KEY.match(key):
        raise Open311Error(
            400, "Idempotency-Key must be 1-100 letters, digits, '.', '_', '~' or '-'"
        )
    token = f"{client.id}-{key}" if key else uuid.uuid4().hex
    names = [n for n in (_form_text("first_name", 100), _form_text("last_name", 100)) if n]
    media_url = _form_text("media_url", 500)
    location = {
        "lat": lat,
        "long": long,
        "address_string": address,
        "address_id": address_id,
        "zipcode": _form_text("zipcode", 20),
        "media_url": media_url,
    }
    contact = InboundContact(
        channel="open311",
        external_id=_external_id(token),
        kind="message",
        sender_phone=phone,
        sender_email=email,
        sender_name=" ".join(names) or None,
        text=description or _service_name(config, code),
        category_hint=code,
        meta={
            "open311": location,
            "attributes": _attributes(),
            "api_client": client.name,
            "device_id": _form_text("device_id", 100),
            "account_id": _form_text("account_id", 100),
        },
    )
    g.db.rollback()  # end the request's transaction: SQLite has one writer, and receive() writes
    receipt = receive(current_app.extensions["hotline_sessions"], contact, config)
    item = {
        "service_request_id": receipt.ticket_ref,
        "token": token,
        "service_notice": None,
        "account_id": _form_text("account_id", 100),
    }
    response = render(fmt, [item], "service_requests", "request")
    response.status_code = 201
    return response


def http_error(status: int, description: str) -> Response:
    """An HTTP error (unknown path, wrong method) under /open311/, as XML or JSON by the path."""
    return error_response(status, description, _format_of_path(request.path))
