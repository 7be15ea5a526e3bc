"""What every API view shares: the blueprint, bearer authentication, JSON errors, input parsing."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy import update
from werkzeug.exceptions import HTTPException

from intake.config import HotlineConfig
from intake.models import ApiClient, Ticket, utcnow
from web.api.auth import Caller, client_for_token, scopes

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 200
MAX_VALUES = 20
DEFAULT_LIMIT = 50


class ApiError(Exception):
    """A client mistake, answered as JSON with a 4xx status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
    return response


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def register_errors(app: Flask) -> None:
    """API paths answer errors in JSON; every other path keeps the app's own pages."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if request.path.startswith("/open311/"):
            from web.open311.views import _format_of_path
            from web.open311.views import error_response as open311_error

            return open311_error(status, exc.description or exc.name, _format_of_path(request.path))
        if not request.path.startswith("/api/"):
            return exc
        response = error_response(
            status, HTTP_CODES.get(status, "error"), exc.description or exc.name
        )
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response


def config() -> HotlineConfig:
    return current_app.config["HOTLINE_SETTINGS"].config


def current_client() -> Caller:
    return g.api_client


def actor() -> str:
    return f"api:{current_client().name}"


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer":
        return None
    return token.strip() or None


def require(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A valid bearer token (else 401) whose role grants `scope` (else 403)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            client = client_for_token(g.db, bearer_token())
            if client is None:
                raise ApiError(401, "unauthorized", "a valid bearer token is required")
            if scope not in scopes(client):
                raise ApiError(403, "forbidden", f"this client's role lacks the {scope} scope")
            now = utcnow()
            if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
                g.db.execute(
                    update(ApiClient).where(ApiClient.id == client.id).values(last_used_at=now)
                )
                g.db.commit()
            g.api_client = client
            return view(*args, **kwargs)

        return wrapped

    return decorator


def visible(query: Any) -> Any:
    """A department-restricted client sees only its department's tickets."""
    client = current_client()
    if client.department_id is not None:
        query = query.where(Ticket.department_id == client.department_id)
    return query


def json_body() -> dict[str, Any]:
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return data


def check_fields(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}")


LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")


def text_field(
    data: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    max_length: int = 10000,
    single_line: bool = False,
) -> str | None:
    """A string field, NULs dropped and trimmed; `single_line` fields (a subject, an address, a
    name: what may end up in a mail header) refuse any line break with a 400."""
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{name} must be a string")
    value = value.replace("\x00", "").strip()
    if required and not value:
        raise ApiError(400, "missing_field", f"{name} must not be empty")
    if len(value) > max_length:
        raise ApiError(400, "invalid_field", f"{name} is longer than {max_length} characters")
    if single_line and LINE_BREAKS.search(value):
        raise ApiError(400, "invalid_field", f"{name} must be one line (no CR or LF)")
    return value


def query_list(name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """Repeated values (`?x=a&x=b`), each checked against `allowed`."""
    values = request.args.getlist(name)
    if any(not v for v in values):
        raise ApiError(400, "invalid_parameter", f"{name} must not be empty")
    if len(values) > MAX_VALUES:
        raise ApiError(400, "invalid_parameter", f"too many values for {name}")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ApiError(
                400,
                "invalid_parameter",
                f"{name} must be one of {', '.join(allowed)} (got {bad[0]!r})",
            )
    return values


def query_choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(allowed)}")
    return value


def query_bool(name: str) -> bool | None:
    value = request.args.get(name)
    if value is None:
        return None
    if value == "true":
        return True
    if value == "false":
        return False
    raise ApiError(400, "invalid_parameter", f"{name} must be true or false")


def query_limit() -> int:
    value = request.args.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", "limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The key a cursor names, or a 400: cursors are opaque, so anything else is a bad one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued") from None
    if not isinstance(key, list):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
    return key


def page_response(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    return jsonify(items=items, next_cursor=next_cursor)


@bp.before_request
def _reject_nul() -> None:
    """No database stores a NUL character in text: refuse it at the door rather than fail later."""
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
    ):
        raise ApiError(400, "invalid_parameter", "NUL characters are not allowed")


LIST_PARAMS = {"limit", "cursor"}
QUERY_PARAMS: dict[str, set[str]] = {
    "api.list_tickets": {
        *LIST_PARAMS,
        *("status", "channel", "category", "department", "priority", "building"),
        *("sla", "assignee", "unassigned", "q", "sort"),
    },
    "api.list_callbacks": {*LIST_PARAMS, "status", "ticket"},
    "api.list_residents": {*LIST_PARAMS, "q", "building"},
}


@bp.before_request
def _reject_unknown_parameters() -> None:
    """A misspelt filter must not silently widen a list."""
    allowed = QUERY_PARAMS.get(request.endpoint or "", set())
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ApiError(
            400, "invalid_parameter", f"unknown query parameter(s): {', '.join(unknown)}"
        )
