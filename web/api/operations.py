"""One decorator per API view: its scope, its request models and its documented responses.

    @bp.patch("/tickets/<ref>")
    @operation("updateTicket", "tickets:write", body=TicketUpdate, responses={200: (Ticket, "…")})
    def update_ticket(ref: str, body: TicketUpdate) -> Any: ...

The wrapper checks the bearer token and scope first (401, 403), then validates the query string
into `query=` and the JSON body into `body=` (415 if it is not JSON; 400 with the error shape
`{"error": {"code", "message"}}` otherwise), and calls the view. The OpenAPI document is built
from what the decorators record (`web.api.openapi`), and `register_api` refuses to start with an
API route that has none, so a new endpoint cannot go undocumented.

Why not `spectree` or `flask-openapi3`: both answer a validation error with 422 and their own
body by default (each can be reconfigured), flask-openapi3 wants its own app and blueprint
classes (`OpenAPI`, `APIBlueprint`), and neither knows this API's order (scope before input),
enums read from the configuration at request time or opaque keyset cursors. Over pydantic's
`model_json_schema` they would add the document's assembly, which is `web.api.openapi`'s ~200
lines; bending them to this API would take more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, wraps
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from web.api.common import ApiError, bp, config, require

Model = TypeVar("Model", bound=BaseModel)

# status: (response model or None for no body, description)
Responses = Mapping[int, tuple[type[BaseModel] | None, str]]

ERROR_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing or invalid bearer token",
    403: "The client's role lacks the scope",
    415: "The body is not application/json",
}


@dataclass(frozen=True)
class Operation:
    """What the document says of one method on one path."""

    operation_id: str
    scope: str
    summary: str | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    responses: Responses
    path_parameters: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)


OPERATIONS: dict[Callable[..., Any], Operation] = {}


def operation(
    operation_id: str,
    scope: str,
    *,
    responses: Responses,
    summary: str | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    headers: Mapping[int, Mapping[str, str]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Authorize with `scope`, validate `query` and `body`, and record it all for the document.

    `responses` names the success and the view's own errors (404, 409 …); 400, 401 and 403 (and
    415 for a body) are added for every operation. `path_parameters` describes each `<name>`.
    """
    spec = Operation(
        operation_id=operation_id,
        scope=scope,
        summary=summary,
        query=query,
        body=body,
        responses=responses,
        path_parameters=path_parameters or {},
        headers=headers or {},
    )

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def validated(*args: Any, **kwargs: Any) -> Any:
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_body(body)
            return view(*args, **kwargs)

        wrapped = require(scope)(validated)
        OPERATIONS[wrapped] = spec
        return wrapped

    return decorator


def context() -> dict[str, Any]:
    """What the models check configured values against."""
    conf = config()
    return {
        "choices": {
            "categories": [c.code for c in conf.categories],
            "departments": [d.code for d in conf.departments],
        }
    }


@cache
def repeatable_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of a query model that take a list (`?status=new&status=routed`)."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if getattr(info.annotation, "__origin__", None) is list
    )


def parse_query(model: type[Model]) -> Model:
    """The query string as `model`: a repeatable field takes every value, any other the first."""
    args = request.args
    lists = repeatable_fields(model)
    data = {name: args.getlist(name) if name in lists else args.get(name) for name in args}
    try:
        return model.model_validate(data, context=context())
    except ValidationError as invalid:
        raise ApiError(
            400, "invalid_parameter", message(invalid.errors(), "query parameter")
        ) from None


def reject_unexpected_parameters() -> None:
    """An operation without a query model (and the document) takes no query parameters: a
    misspelt filter must not silently widen a list (a before_request hook of the blueprint)."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec = OPERATIONS.get(view) if view is not None else None
    if request.args and (spec is None or spec.query is None):
        unknown = ", ".join(sorted(request.args))
        raise ApiError(400, "invalid_parameter", f"unknown query parameter(s): {unknown}")


def parse_body(model: type[Model]) -> Model:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return model.model_validate_json(request.get_data(), context=context())
    except ValidationError as invalid:
        errors = invalid.errors()
        kinds = {e["type"] for e in errors}
        if kinds & {"json_invalid", "model_type", "model_attributes_type"}:
            raise ApiError(400, "invalid_body", "the body must be a JSON object") from None
        raise ApiError(400, body_code(errors), message(errors)) from None


def body_code(errors: list[ErrorDetails]) -> str:
    kind = _first(errors)["type"]
    if kind == "extra_forbidden":
        return "unknown_field"
    if kind in ("missing", "blank"):
        return "missing_field"
    return "invalid_field"


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    """Unknown fields first (all of them are named), then the first field that failed."""
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    return unknown[0] if unknown else errors[0]


def message(errors: list[ErrorDetails], noun: str = "field") -> str:
    """One sentence naming the field, as the hand-written checks said it."""
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return f"unknown {noun}(s): {', '.join(sorted(unknown))}"
    error = errors[0]
    name = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    text = {
        "missing": "is required",
        "string_type": "must be a string",
        "list_type": "must be a list",
    }.get(error["type"], error["msg"])
    if error["type"] == "too_long" and "max_length" in error.get("ctx", {}):
        text = f"takes at most {error['ctx']['max_length']} values"
    return f"{name} {text}" if name else text


bp.before_request(reject_unexpected_parameters)
