"""Residents: buildings, units, residents and their contact points; CSV import; history."""

from __future__ import annotations

import base64
import csv
import io
from typing import Any

from flask import (
    Blueprint,
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
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from intake import audit
from intake.models import Building, ContactPoint, Interaction, Resident, Ticket, Unit
from intake.residents import CSV_COLUMNS, RowError, import_residents
from voice.languages import menu_languages
from web.auth import MANAGERS, STAFF, login_required, visible_tickets, who
from web.i18n import LANGUAGES

bp = Blueprint("residents", __name__)
PAGE_SIZE = 100
MAX_IMPORT_BYTES = 5 * 1024 * 1024


@bp.get("/residents")
@login_required(*STAFF)
def directory() -> Any:
    q = (request.args.get("q") or "").strip()[:100]
    building = request.args.get("building", "")
    after = request.args.get("after", type=int) or 0
    query = (
        select(Resident)
        .options(
            selectinload(Resident.contact_points),
            selectinload(Resident.unit).selectinload(Unit.building),
        )
        .where(Resident.id > after)
        .order_by(Resident.id)
    )
    if q:
        needle = f"%{q.replace('%', '')}%"
        query = query.where(
            or_(
                Resident.name.ilike(needle),
                Resident.id.in_(
                    select(ContactPoint.resident_id).where(ContactPoint.value.ilike(needle))
                ),
            )
        )
    if building:
        query = query.where(
            Resident.unit_id.in_(select(Unit.id).join(Building).where(Building.code == building))
        )
    residents = g.db.scalars(query.limit(PAGE_SIZE + 1)).all()
    next_after = residents[PAGE_SIZE - 1].id if len(residents) > PAGE_SIZE else None
    buildings = g.db.execute(
        select(Building, func.count(Unit.id))
        .outerjoin(Unit, Unit.building_id == Building.id)
        .group_by(Building.id)
        .order_by(Building.code)
    ).all()
    return render_template(
        "residents.html",
        residents=residents[:PAGE_SIZE],
        next_after=next_after,
        buildings=buildings,
        q=q,
        building=building,
    )


@bp.get("/residents/<int:resident_id>")
@login_required(*STAFF)
def show(resident_id: int) -> Any:
    resident = g.db.get(Resident, resident_id)
    if resident is None:
        abort(404)
    values = [cp.value for cp in resident.contact_points]
    tickets = g.db.scalars(
        visible_tickets()
        .where(
            or_(
                Ticket.resident_id == resident.id,
                Ticket.contact_phone.in_(values or [""]),
                Ticket.contact_email.in_(values or [""]),
            )
        )
        .options(selectinload(Ticket.department))
        .order_by(Ticket.created_at.desc())
        .limit(200)
    ).all()
    by_channel = dict(
        g.db.execute(
            select(Interaction.channel, func.count())
            .where(
                Interaction.ticket_id.in_([t.id for t in tickets] or [0]),
                Interaction.direction == "in",  # what the resident sent, not what was sent out
            )
            .group_by(Interaction.channel)
        ).all()
    )
    return render_template(
        "resident.html",
        resident=resident,
        tickets=tickets,
        by_channel=by_channel,
        written_languages=LANGUAGES,
        spoken_languages=[
            lang.key for lang in menu_languages(current_app.config["HOTLINE_SETTINGS"].config)
        ],
    )


@bp.post("/residents/<int:resident_id>/preferences")
@login_required(*STAFF)
def preferences(resident_id: int) -> Any:
    """What a resident asked for on the phone or at the desk: the script we write in, the variety
    they hear on the phone, and whether planned-works notices reach them (incidents always do)."""
    resident = g.db.get(Resident, resident_id)
    if resident is None:
        abort(404)
    spoken_choices = {
        lang.key for lang in menu_languages(current_app.config["HOTLINE_SETTINGS"].config)
    }
    written = request.form.get("language", "")
    spoken = request.form.get("spoken_language", "")
    if written not in LANGUAGES or (spoken and spoken not in spoken_choices):
        abort(400, description=_("Choose a language from the list."))
    wanted = {
        "language": written,
        "spoken_language": spoken or None,
        "notices_opt_out": request.form.get("notices") == "urgent_only",
    }
    changed = {
        field: (getattr(resident, field), value)
        for field, value in wanted.items()
        if getattr(resident, field) != value
    }
    if changed:
        for field, (_before, value) in changed.items():
            setattr(resident, field, value)
        audit.record(
            g.db, "resident_changed", **who(), target=f"resident {resident.id}", changed=changed
        )
        g.db.commit()
        flash(_("Saved."), "ok")
    return redirect(url_for("residents.show", resident_id=resident.id))


def _rows(text: str) -> tuple[list[dict[str, str]], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("name",) if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    problems = []
    if missing:
        problems.append(_("Missing column: %(cols)s", cols=", ".join(missing)))
    if unknown:
        problems.append(_("Unknown columns: %(cols)s", cols=", ".join(unknown)))
    rows = [{(k or "").strip(): (v or "") for k, v in row.items() if k} for row in reader]
    return rows, problems


def row_error_text(err: RowError) -> str:
    """A CSV line's problem in the operator's language."""
    params = dict(err.params)
    value = params.get("value", "")
    if err.code == "name_empty":
        return _("The name is empty.")
    if err.code == "language_unknown":
        return _(
            "Language “%(value)s” is not one of %(allowed)s.",
            value=value,
            allowed=_(", ").join(params.get("allowed", "").split(", ")),
        )
    if err.code == "phone_invalid":
        return _("“%(value)s” is not a valid phone number.", value=value)
    if err.code == "email_invalid":
        return _("“%(value)s” is not an email address.", value=value)
    if err.code == "contact_missing":
        return _("Give a phone number or an email address.")
    if err.code == "building_unit_pair":
        return _("Give both the building and the unit, or neither.")
    if err.code == "duplicate":
        return _("%(value)s is also on line %(line)s.", value=value, line=params.get("line", ""))
    if err.code == "email_taken":
        return _("%(value)s already belongs to another resident.", value=value)
    return err.message


def _decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "big5", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


@bp.route("/residents/import", methods=["GET", "POST"])
@login_required(*MANAGERS)
def import_csv() -> Any:
    """Upload → preview with errors by line (a dry run) → confirm, all or nothing."""
    config = current_app.config["HOTLINE_SETTINGS"].config
    if request.method == "GET":
        return render_template("residents_import.html", columns=CSV_COLUMNS, stage="upload")
    if "payload" in request.form:
        try:
            text = base64.b64decode(request.form["payload"], validate=True).decode("utf-8")
        except ValueError:
            abort(400)
    else:
        upload = request.files.get("file")
        data = upload.read(MAX_IMPORT_BYTES + 1) if upload else b""
        if not data or len(data) > MAX_IMPORT_BYTES:
            flash(_("Choose a CSV file (at most 5 MB)."), "error")
            return redirect(url_for("residents.import_csv"))
        decoded = _decode(data)
        if decoded is None:
            flash(_("The file is not UTF-8, Big5 or GB18030 text."), "error")
            return redirect(url_for("residents.import_csv"))
        text = decoded
    rows, problems = _rows(text)
    confirm = request.form.get("confirm") == "1"
    report = import_residents(g.db, rows, config, dry_run=not confirm or bool(problems))
    if confirm and not problems and not report.errors:
        g.db.commit()
        flash(
            _(
                "Imported: %(created)s new, %(updated)s updated.",
                created=report.created,
                updated=report.updated,
            )
        )
        return render_template(
            "residents_import.html",
            columns=CSV_COLUMNS,
            stage="done",
            report=report,
            total=len(rows),
        )
    g.db.rollback()
    errors_by_line: dict[int, list[str]] = {}
    for err in report.errors:
        errors_by_line.setdefault(err.line, []).append(row_error_text(err))
    return render_template(
        "residents_import.html",
        columns=CSV_COLUMNS,
        stage="preview",
        rows=list(enumerate(rows, start=2)),
        problems=problems,
        errors=errors_by_line,
        total=len(rows),
        payload=base64.b64encode(text.encode("utf-8")).decode(),
    ), (200 if not (problems or report.errors) else 422)
