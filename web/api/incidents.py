"""Incidents over the API: read (each with its linked tickets, contacts and notices sent), and
declared, updated and resolved by a client with the `incidents:write` scope (not one bound to a
department: an incident spans buildings)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from sqlalchemy import select

from intake import incidents as core
from intake.models import Incident
from web.api import models
from web.api.common import ApiError, actor, bp, config, current_client, page_response
from web.api.operations import operation

MAX_ID = 2**31 - 1
INCIDENT_ID = {"id": "The incident's id"}
NO_INCIDENT = (models.Error, "No such incident")


@bp.get("/incidents")
@operation(
    "listIncidents",
    "tickets:read",
    summary="Building-wide incidents, newest first",
    query=models.IncidentQuery,
    responses={200: (models.IncidentPage, "Incidents")},
)
def list_incidents(query: models.IncidentQuery) -> Any:
    """Newest first (at most `limit`)."""
    rows = select(Incident).order_by(Incident.id.desc()).limit(query.limit)
    if query.status:
        rows = rows.where(Incident.status.in_(query.status))
    department = current_client().department_id
    items = [core.serialize(g.db, i, department_id=department) for i in g.db.scalars(rows)]
    return page_response(items, None)


def _load(incident_id: int) -> Incident:
    incident = g.db.get(Incident, incident_id) if incident_id <= MAX_ID else None
    if incident is None:
        raise ApiError(404, "not_found", f"no incident {incident_id}")
    return incident


@bp.get("/incidents/<int:id>")
@operation(
    "getIncident",
    "tickets:read",
    path_parameters=INCIDENT_ID,
    responses={200: (models.Incident, "The incident"), 404: NO_INCIDENT},
)
def get_incident(id: int) -> Any:  # the name the document gives it
    incident = _load(id)
    return jsonify(core.serialize(g.db, incident, department_id=current_client().department_id))


def _estate_wide() -> None:
    if current_client().department_id is not None:
        raise ApiError(403, "forbidden", "a client bound to a department may not change incidents")


def _refused(exc: core.IncidentError) -> ApiError:
    return ApiError(409 if exc.code == "not_active" else 400, exc.code, exc.message)


@bp.post("/incidents")
@operation(
    "declareIncident",
    "incidents:write",
    summary="Declare an incident (or planned works); `notify` tells every household",
    body=models.NewIncident,
    responses={201: (models.Incident, "The incident")},
    headers={201: {"Location": "The incident's address"}},
)
def declare_incident(body: models.NewIncident) -> Any:
    _estate_wide()
    try:
        incident = core.declare(
            g.db,
            buildings=body.buildings,
            category=body.category,
            kind=body.kind,
            texts=dict(body.texts),
            keywords=body.keywords,
            units=body.units,
            starts_at=body.starts_at,
            until=body.expected_end_at,
            notify=body.notify,
            config=config(),
            actor=actor(),
        )
    except core.IncidentError as exc:
        g.db.rollback()
        raise _refused(exc) from None
    g.db.commit()
    response = jsonify(core.serialize(g.db, incident))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/incidents/{incident.id}"
    return response


@bp.patch("/incidents/<int:id>")
@operation(
    "updateIncident",
    "incidents:write",
    summary="New words or a new expected end; `notify` tells the households",
    path_parameters=INCIDENT_ID,
    body=models.IncidentUpdate,
    responses={
        200: (models.Incident, "The incident"),
        404: NO_INCIDENT,
        409: (models.Error, "The incident is no longer active"),
    },
)
def update_incident(id: int, body: models.IncidentUpdate) -> Any:
    _estate_wide()
    incident = _load(id)
    try:
        core.update(
            g.db,
            incident,
            actor=actor(),
            texts=dict(body.texts or {}),
            until=body.expected_end_at,
            notify=body.notify,
        )
    except core.IncidentError as exc:
        g.db.rollback()
        raise _refused(exc) from None
    g.db.commit()
    return jsonify(core.serialize(g.db, incident))


@bp.post("/incidents/<int:id>/resolve")
@operation(
    "resolveIncident",
    "incidents:write",
    summary="Resolved: its open tickets are resolved and the all-clear goes out (once)",
    path_parameters=INCIDENT_ID,
    body=models.IncidentResolution,
    responses={200: (models.Incident, "The incident"), 404: NO_INCIDENT},
)
def resolve_incident(id: int, body: models.IncidentResolution) -> Any:
    _estate_wide()
    incident = _load(id)
    core.resolve(g.db, incident, actor=actor(), config=config(), note=body.note or "")
    g.db.commit()
    return jsonify(core.serialize(g.db, incident))
