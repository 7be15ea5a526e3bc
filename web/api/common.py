"""What every API view shares: the blueprint, bearer authentication, JSON errors, cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy import update
from werkzeug.exceptions import HTTPException

from intake.config import HotlineConfig
from intake.models import ApiClient, Ticket, utcnow
from web.api.auth import Caller, client_for_token, scopes

bp = Blueprint("api", __name__, url_prefix="/api/v1")


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


# `app.extensions[ERROR_FORMATS]`: path prefix -> how another machine-facing surface (Open311)
# answers an HTTP error (status, description) in its own format.
ERROR_FORMATS = "hotline_error_formats"


def register_errors(app: Flask) -> None:
    """API paths answer errors in JSON, paths registered under ERROR_FORMATS in their own format;
    every other path keeps the app's own pages."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        for prefix, answer in app.extensions.get(ERROR_FORMATS, {}).items():
            if request.path.startswith(prefix):  # Open311 answers in its own format
                return answer(status, exc.description or exc.name)
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


def aware_moment(text: Any) -> datetime:
    """A moment with its offset, as cursors carry them; anything else is a ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("naive")
    return moment


def page_response(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    return jsonify(items=items, next_cursor=next_cursor)


@bp.before_request
def _reject_nul() -> None:
    """No database stores a NUL character in text: refuse it at the door rather than fail later."""
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
    ):
        raise ApiError(400, "invalid_parameter", "NUL characters are not allowed")
