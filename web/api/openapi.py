"""The OpenAPI document, generated from the routes and the models their operations declare.

Every route of the blueprint has an `operation` (`undocumented_routes` is checked at start-up);
its path comes from the Flask rule, its parameters from the query model and the rule's
converters, its body and responses from the models (`web.api.models`). Category and department
codes are filled in from the configuration, as the views check them.

The document is OpenAPI 3.1: its schemas are JSON Schema 2020-12, which is what pydantic writes
(`null` as a type rather than 3.0's `nullable`), so the models' schemas go in unchanged.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

from flask import Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.api.auth import ROLE_SCOPES
from web.api.common import bp
from web.api.models import CONFIGURED_CHOICES, Error
from web.api.operations import ERROR_DESCRIPTIONS, OPERATIONS, Operation, context

REF_TEMPLATE = "#/components/schemas/{model}"
RULE_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^>]*\))?:)?(\w+)>")
PATH_SCHEMAS = {"int": {"type": "integer", "minimum": 0}}
UNDOCUMENTED = {"api.openapi_json"}


def _tidy(node: Any) -> Any:
    """Drop pydantic's generated titles (the property names say it) from a schema, in place."""
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):
            del node["title"]
        for value in node.values():
            _tidy(value)
    elif isinstance(node, list):
        for value in node:
            _tidy(value)
    return node


def _fill_choices(node: Any, choices: dict[str, list[str]]) -> None:
    """Configured codes in place of the models' markers (see `web.api.models.OneOf`)."""
    if isinstance(node, dict):
        name = node.pop(CONFIGURED_CHOICES, None)
        if name is not None:
            node["enum"] = list(choices[name])
        for value in node.values():
            _fill_choices(value, choices)
    elif isinstance(node, list):
        for value in node:
            _fill_choices(value, choices)


def _models() -> list[tuple[type[BaseModel], Any]]:
    """Every body and response model, once, with the side of the wire it describes."""
    seen: dict[type[BaseModel], Any] = {Error: "serialization"}
    for spec in OPERATIONS.values():
        if spec.body is not None:
            seen[spec.body] = "validation"
        for model, _description in spec.responses.values():
            if model is not None:
                seen.setdefault(model, "serialization")
    return sorted(seen.items(), key=lambda item: item[0].__name__)


@cache
def _static_parts() -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Component schemas and query parameters: they change only with the code."""
    _refs, top = models_json_schema(_models(), ref_template=REF_TEMPLATE)
    schemas = _tidy(top.get("$defs", {}))
    parameters = {
        (spec.operation_id, "query"): _query_parameters(spec.query)
        for spec in OPERATIONS.values()
        if spec.query is not None
    }
    return schemas, parameters


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = _tidy(model.model_json_schema(ref_template=REF_TEMPLATE))
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        description = field.pop("description", None)
        variants = [v for v in field.pop("anyOf", ()) if v.get("type") != "null"]
        if variants:  # `X | None`: a query parameter is absent, never null
            field = {**variants[0], **field}
        if field.get("default") in (None, []):
            field.pop("default", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            parameter["description"] = description
        if field.get("type") == "array":
            parameter |= {"style": "form", "explode": True}
        parameters.append({**parameter, "schema": field})
    return parameters


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _json(description: str, model: type[BaseModel] | None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if model is not None:
        response["content"] = {"application/json": {"schema": _ref(model.__name__)}}
    return response


def _roles_with(scope: str) -> str:
    return ", ".join(f"`{role}`" for role, scopes in ROLE_SCOPES.items() if scope in scopes)


def _operation(spec: Operation, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (model, description) in sorted(spec.responses.items()):
        responses[str(status)] = _json(description, model)
        for header, text in spec.headers.get(status, {}).items():
            responses[str(status)].setdefault("headers", {})[header] = {
                "description": text,
                "schema": {"type": "string"},
            }
    errors = [400, 401, 403] + ([415] if spec.body is not None else [])
    for status in errors:
        responses.setdefault(str(status), _json(ERROR_DESCRIPTIONS[status], Error))
    item: dict[str, Any] = {"operationId": spec.operation_id}
    if spec.summary:
        item["summary"] = spec.summary
    item["description"] = f"Scope `{spec.scope}` (roles {_roles_with(spec.scope)})."
    if parameters:
        item["parameters"] = parameters
    if spec.body is not None:
        item["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(spec.body.__name__)}},
        }
    item["responses"] = dict(sorted(responses.items()))
    return item


def _path(rule: str, spec: Operation) -> tuple[str, list[dict[str, Any]]]:
    """The rule as an OpenAPI path (`/tickets/{ref}`) and its path parameters."""
    parameters = []
    for converter, name in RULE_ARGUMENT.findall(rule):
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
        if name in spec.path_parameters:
            parameter["description"] = spec.path_parameters[name]
        parameter["schema"] = PATH_SCHEMAS.get(converter, {"type": "string"})
        parameters.append(parameter)
    path = RULE_ARGUMENT.sub(lambda m: "{" + m.group(2) + "}", rule)
    return path.removeprefix(bp.url_prefix or ""), parameters


def undocumented_routes(app: Flask) -> list[str]:
    """Routes of the API blueprint without an `operation`: the document would miss them."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.")
        and rule.endpoint not in UNDOCUMENTED
        and app.view_functions[rule.endpoint] not in OPERATIONS
    )


def document() -> dict[str, Any]:
    schemas, query_parameters = _static_parts()
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        spec = OPERATIONS.get(current_app.view_functions[rule.endpoint])
        if spec is None or not rule.endpoint.startswith(f"{bp.name}."):
            continue
        path, path_parameters = _path(rule.rule, spec)
        parameters = path_parameters + query_parameters.get((spec.operation_id, "query"), [])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(spec, parameters)
    roles = "; ".join(f"`{r}`: {', '.join(sorted(s))}" for r, s in ROLE_SCOPES.items())
    result = {
        "openapi": "3.1.0",
        "info": {
            "title": "Hotline API",
            "version": "1.0.0",
            "description": (
                "Tickets, callbacks, residents and incidents of the Hotline customer-service "
                "centre. Authenticate with `Authorization: Bearer <token>` "
                f"(`hotline api-token create`). Roles and scopes: {roles}. "
                'Errors are `{"error": {"code", "message"}}`.'
            ),
        },
        "servers": [{"url": bp.url_prefix}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }
    result = copy.deepcopy(result)
    _fill_choices(result, context()["choices"])
    return result


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())
