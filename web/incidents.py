"""Incidents in the console: supervisors declare, update and resolve them and see their tickets,
contacts and notices; the suggestions of detection (many tickets of one kind from one building)
are declared with one click; any staff member links or unlinks a ticket by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import func, select

from intake import incidents as core
from intake.clock import utcnow
from intake.models import Building, Incident, IncidentContact, Outbox, Ticket
from web.auth import MANAGERS, STAFF, actor, login_required

bp = Blueprint("incidents", __name__)
TEXT_FIELDS = {
    "zh-Hant": "text_zh_hant",
    "zh-Hans": "text_zh_hans",
    "en": "text_en",
    "yue": "text_yue",
}


def _errors() -> dict[str, str]:
    return {
        "bad_kind": _("Choose incident or planned works."),
        "bad_category": _("Choose a category."),
        "no_buildings": _("Choose at least one building."),
        "unknown_building": _("One of the buildings does not exist."),
        "no_text": _("Describe the incident in at least one language."),
        "bad_until": _("The expected end must be after the start."),
        "not_active": _("The incident is already resolved."),
    }


def _config() -> Any:
    return current_app.config["HOTLINE_SETTINGS"].config


def _moment(value: str | None) -> datetime | None:
    """A datetime-local field in the centre's time; None when empty or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip()[:32])
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=_config().timezone)


def _texts() -> dict[str, str | None]:
    return {lang: request.form.get(field, "")[:1000] for lang, field in TEXT_FIELDS.items()}


def _words(value: str | None) -> list[str]:
    return [w.strip() for w in (value or "").replace("，", ",").split(",") if w.strip()]


def _load(incident_id: int) -> Incident:
    incident = g.db.get(Incident, incident_id)
    if incident is None:
        abort(404)
    return incident


@bp.get("/incidents")
@login_required(*STAFF)
def index() -> Any:
    now = utcnow()
    incidents = core.list_incidents(g.db)[:200]
    counts = dict(
        g.db.execute(
            select(Ticket.incident_id, func.count())
            .where(Ticket.incident_id.is_not(None))
            .group_by(Ticket.incident_id)
        ).all()
    )
    contacts = dict(
        g.db.execute(
            select(IncidentContact.incident_id, func.count()).group_by(IncidentContact.incident_id)
        ).all()
    )
    local = now.astimezone(_config().timezone)
    month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return render_template(
        "incidents.html",
        stats=core.statistics(g.db, month, now + timedelta(days=1)),
        month=month,
        incidents=incidents,
        counts=counts,
        contacts=contacts,
        suggestions=core.suggestions(g.db, _config(), now),
        buildings=g.db.scalars(select(Building).order_by(Building.code)).all(),
        categories=_config().categories,
        text_for=core.text_for,
    )


@bp.post("/incidents")
@login_required(*MANAGERS)
def declare() -> Any:
    form = request.form
    until = _moment(form.get("until"))
    if form.get("until") and until is None:
        flash(_("The expected end is not a date and time."), "error")
        return redirect(url_for("incidents.index"))
    tickets = [int(t) for t in form.getlist("ticket") if t.isdigit() and len(t) < 10]
    try:
        incident = core.declare(
            g.db,
            buildings=form.getlist("building") or _words(form.get("buildings")),
            category=form.get("category", ""),
            kind=form.get("kind", "incident"),
            texts=_texts(),
            keywords=_words(form.get("keywords")),
            units=_words(form.get("units")),
            until=until,
            notify=form.get("notify") == "1",
            link_tickets=tickets,
            config=_config(),
            actor=actor(),
        )
    except core.IncidentError as exc:
        flash(_errors().get(exc.code, _("The incident could not be declared.")), "error")
        return redirect(url_for("incidents.index"))
    g.db.commit()
    flash(_("Incident declared."))
    return redirect(url_for("incidents.show", incident_id=incident.id))


@bp.get("/incidents/<int:incident_id>")
@login_required(*STAFF)
def show(incident_id: int) -> Any:
    incident = _load(incident_id)
    tickets = g.db.scalars(
        select(Ticket).where(Ticket.incident_id == incident.id).order_by(Ticket.id)
    ).all()
    contacts = g.db.scalars(
        select(IncidentContact)
        .where(IncidentContact.incident_id == incident.id)
        .order_by(IncidentContact.id)
    ).all()
    progress = core.notice_progress(g.db, incident.id)
    writing = any(
        row.args.get("incident_id") == incident.id
        for row in g.db.scalars(
            select(Outbox).where(
                Outbox.job == "send_incident_notices", Outbox.status.in_(("pending", "enqueued"))
            )
        )
    )
    waiting = sum(c.get("queued", 0) + c.get("sending", 0) for c in progress.values())
    return render_template(
        "incident.html",
        sending=writing or waiting > 0,
        incident=incident,
        tickets=tickets,
        contacts=contacts,
        progress=progress,
        failed=core.failed_notices(g.db, incident.id),
        text_for=core.text_for,
        TEXT_FIELDS=TEXT_FIELDS,
    )


@bp.post("/incidents/<int:incident_id>/update")
@login_required(*MANAGERS)
def update(incident_id: int) -> Any:
    incident = _load(incident_id)
    until = _moment(request.form.get("until"))
    if request.form.get("until") and until is None:
        flash(_("The expected end is not a date and time."), "error")
        return redirect(url_for("incidents.show", incident_id=incident.id))
    try:
        core.update(
            g.db,
            incident,
            actor=actor(),
            texts=_texts(),
            until=until,
            notify=request.form.get("notify") == "1",
        )
    except core.IncidentError as exc:
        flash(_errors().get(exc.code, _("The incident could not be updated.")), "error")
        return redirect(url_for("incidents.show", incident_id=incident.id))
    g.db.commit()
    flash(_("Incident updated."))
    return redirect(url_for("incidents.show", incident_id=incident.id))


@bp.post("/incidents/<int:incident_id>/resolve")
@login_required(*MANAGERS)
def resolve(incident_id: int) -> Any:
    incident = _load(incident_id)
    if incident.status == "resolved":
        flash(_("The incident is already resolved."))
        return redirect(url_for("incidents.show", incident_id=incident.id))
    core.resolve(
        g.db, incident, actor=actor(), config=_config(), note=request.form.get("note", "")[:2000]
    )
    g.db.commit()
    flash(_("Incident resolved; the all-clear is being sent."))
    return redirect(url_for("incidents.show", incident_id=incident.id))


@bp.post("/incidents/link")
@login_required(*STAFF)
def link() -> Any:
    """Link (or, with `unlink`, take out) a ticket by hand; back to where the form was."""
    ref = (request.form.get("ref") or "").strip().upper()[:20]
    ticket = g.db.scalar(select(Ticket).where(Ticket.ref == ref)) if ref else None
    back = request.form.get("back") == "ticket" and ticket is not None
    if ticket is None:
        flash(_("No ticket with that reference."), "error")
        return redirect(request.referrer or url_for("incidents.index"))
    if request.form.get("unlink") == "1":
        core.unlink(g.db, ticket, actor=actor())
        g.db.commit()
        flash(_("Ticket taken out of the incident."))
    else:
        raw = request.form.get("incident", "")
        incident = g.db.get(Incident, int(raw)) if raw.isdigit() and len(raw) < 10 else None
        if incident is None:
            flash(_("Choose an incident."), "error")
            return redirect(url_for("ticket.show", ref=ticket.ref))
        core.link(g.db, ticket, incident, actor=actor())
        g.db.commit()
        flash(_("Ticket linked to the incident."))
    if back:
        return redirect(url_for("ticket.show", ref=ticket.ref))
    origin = request.form.get("from", "")
    if origin.isdigit() and len(origin) < 10:
        return redirect(url_for("incidents.show", incident_id=int(origin)))
    return redirect(url_for("incidents.index"))


def _ticket_incident(ticket: Ticket) -> Incident | None:
    """For the ticket page: the incident it is in."""
    return g.db.get(Incident, ticket.incident_id) if ticket.incident_id else None


def _active_incidents() -> list[Incident]:
    """For the ticket page's link form: the incidents a ticket may join."""
    return core.list_incidents(g.db, "active")[:50]


def _minutes(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value // 60}:{value % 60:02d}"


def install(app: Flask) -> None:
    app.jinja_env.globals["ticket_incident"] = _ticket_incident
    app.jinja_env.globals["active_incidents"] = _active_incidents
    app.jinja_env.globals["incident_text"] = core.text_for
    app.jinja_env.filters["duration_minutes"] = _minutes
