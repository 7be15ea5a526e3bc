"""The queue: every channel in one list, filters saved as views, live counters and updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from functools import cache
from typing import Any, NamedTuple
from urllib.parse import quote

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import Row, Select, bindparam, func, select

from intake.constants import CHANNELS, PRIORITIES, STATUSES
from intake.models import (
    Building,
    Callback,
    Department,
    Operator,
    Resident,
    SavedView,
    Ticket,
    Unit,
    utcnow,
)
from intake.sla import sla_of
from web.auth import STAFF, current_operator, login_required, visible_tickets
from web.db import read_only
from web.filters import MAX_CURSOR_ID, QueueFilter, page, with_names
from web.i18n import current_language
from web.labels import channel_labels, sla_labels, status_labels, time_left
from web.lookups import department_ids
from web.signed_in import signed_in_operator

bp = Blueprint("queue", __name__)
DONE = ("resolved", "closed")
PAGE_SIZE = 50
MAX_WATCHED = 200
DEPARTMENT_NAMES = {"zh-Hans": Department.name_zh_hans, "en": Department.name_en}


class QueueRow(NamedTuple):
    """One row of the queue, every cell already a display string."""

    ref: str
    url: str
    priority: str
    channel: str
    category: str
    status: str
    department: str
    subject: str
    contact: str
    unit: str
    assignee: str
    due: str
    sla: str
    sla_label: str
    created: str
    left: str
    status_code: str
    incident: int | None = None


def _counters() -> list[Any]:
    """Callbacks owed at `:now` and missed calls not yet returned, each an index-only count."""
    waiting = select(func.count()).where(
        Callback.status == "scheduled", Callback.due_at <= bindparam("now")
    )
    missed = select(func.count()).where(
        Callback.status.in_(("scheduled", "in_progress")), Callback.purpose == "missed_call"
    )
    return [
        waiting.scalar_subquery().label("waiting_callbacks"),
        missed.scalar_subquery().label("missed_calls"),
    ]


@cache
def _counts_query() -> Select[*tuple[Any, ...]]:
    return select(*_counters())


@cache
def _counts_and_newest_query() -> Select[*tuple[Any, ...]]:
    """The queue page's counters and the newest ticket's id (where "N new" counts from)."""
    return select(*_counters(), select(func.max(Ticket.id)).scalar_subquery().label("newest"))


def waiting_counts() -> dict[str, int]:
    """The counters every page shows, counted once per request."""
    if "waiting_counts" not in g:
        row = g.db.connection().execute(_counts_query(), {"now": utcnow()}).one()
        g.waiting_counts = dict(row._mapping)
    return g.waiting_counts


@cache
def queue_query(language: str) -> Select[*tuple[Any, ...]]:
    """Exactly the columns the queue shows, with the names they need, in one statement.

    Built once per language: a statement is immutable, and building it costs more than running it.
    """
    return with_names(
        select(
            Ticket.id,
            Ticket.ref,
            Ticket.priority,
            Ticket.channel,
            Ticket.category,
            Ticket.status,
            Ticket.subject,
            Ticket.contact_phone,
            Ticket.contact_email,
            Ticket.first_response_due_at,
            Ticket.resolution_due_at,
            Ticket.first_responded_at,
            Ticket.created_at,
            DEPARTMENT_NAMES.get(language, Department.name_zh_hant).label("department"),
            Resident.name.label("resident"),
            Building.code.label("building"),
            Unit.label.label("unit"),
            Operator.name.label("assignee"),
            Ticket.incident_id,
        ),
        Ticket.unit_id,
    )


def queue_rows(
    rows: Sequence[Row[*tuple[Any, ...]]], language: str, now: datetime
) -> list[QueueRow]:
    """Labels, names and local times worked out once per row, not once per template lookup."""
    config = current_app.config["HOTLINE_SETTINGS"].config
    tz = config.timezone
    statuses, channels, slas = status_labels(), channel_labels(), sla_labels()
    categories = {c.code: c.names[language] for c in config.categories}
    ticket_url = url_for("ticket.show", ref="_")[:-1]
    out = []
    # Unpacked by position: the order of queue_query's columns (attribute lookups on a Row cost
    # more than the rest of the loop).
    for (
        _id,
        ref,
        priority,
        channel,
        category,
        status,
        subject,
        phone,
        email,
        first_response_due_at,
        resolution_due_at,
        first_responded_at,
        created_at,
        department,
        resident,
        building,
        unit,
        assignee,
        incident,
    ) in rows:
        sla = sla_of(status, first_responded_at, first_response_due_at, resolution_due_at, now)
        out.append(
            QueueRow(
                ref=ref,
                url=ticket_url + quote(ref or "", safe=""),
                priority=priority,
                channel=channels.get(channel, channel),
                category=categories.get(category, category),
                status=statuses.get(status, status),
                department=department or "—",
                subject=subject,
                contact=resident or phone or email or "—",
                unit=f"{building} {unit}" if unit is not None else "",
                assignee=assignee or "",
                due=_minutes(resolution_due_at, tz)[5:] if resolution_due_at else "—",
                sla=sla,
                sla_label=slas.get(sla, sla),
                created=_minutes(created_at, tz),
                incident=incident,
                left=time_left(resolution_due_at, now) if status not in DONE else "",
                status_code=status,
            )
        )
    return out


def _minutes(moment: datetime, tz: tzinfo) -> str:
    """`YYYY-MM-DD HH:MM` in the centre's zone, like the `local` filter, at a third of strftime's cost."""
    return moment.astimezone(tz).isoformat(" ", "minutes")[:16]


@bp.get("/")
@read_only
@login_required()
def index() -> Any:
    op = current_operator()
    assert op is not None
    flt = QueueFilter.from_args(request.args)
    language = current_language()
    now = utcnow()
    db = g.db.connection()
    ids = department_ids(g.db, flt.departments)
    rows, next_cursor = page(
        db,
        lambda: flt.apply(visible_tickets(queue_query(language)), op, ids, now),
        flt,
        request.args.get("after"),
        PAGE_SIZE,
        key=("queue", db.dialect.name, language, op.id, op.role, op.department_id, tuple(ids)),
        now=now,
    )
    counts = db.execute(_counts_and_newest_query(), {"now": now}).one()
    if op.role in STAFF:
        g.waiting_counts = {
            "waiting_callbacks": counts.waiting_callbacks,
            "missed_calls": counts.missed_calls,
        }
    views = db.execute(
        select(SavedView.id, SavedView.name, SavedView.query)
        .where(SavedView.operator_id == op.id)
        .order_by(SavedView.name)
    ).all()
    config = current_app.config["HOTLINE_SETTINGS"].config
    return render_template(
        "queue.html",
        tickets=queue_rows(rows, language, now),
        flt=flt,
        next_cursor=next_cursor,
        query_string=flt.to_query_string(),
        views=views,
        statuses=STATUSES,
        channels=CHANNELS,
        priorities=PRIORITIES,
        departments=sorted((d.code, d.names[language]) for d in config.departments),
        buildings=db.execute(select(Building.code, Building.name).order_by(Building.code)).all(),
        newest_id=counts.newest or 0,
        config_poll_seconds=current_app.config.get("CONSOLE_POLL_SECONDS", 15),
    )


@bp.get("/queue/poll")
@read_only
@login_required()
def poll() -> Any:
    """What changed since the page was drawn: counters, how many new tickets match, watched rows.

    The page never reorders itself; it shows "N new" and updates the rows already on screen.
    """
    op = current_operator()
    flt = QueueFilter.from_args(request.args)
    try:
        since_id = int(request.args.get("since", "0"))
    except ValueError:
        abort(400)
    since_id = max(0, min(since_id, MAX_CURSOR_ID))  # beyond any id: nothing is newer
    db = g.db.connection()
    ids = department_ids(g.db, flt.departments)
    new_count = db.execute(
        flt.apply(visible_tickets(select(func.count(Ticket.id))), op, ids).where(
            Ticket.id > since_id
        )
    ).scalar()
    refs = [r for r in request.args.getlist("ref") if r][:MAX_WATCHED]
    rows = {}
    if refs:
        statuses = status_labels()
        watched = visible_tickets(
            select(Ticket.ref, Ticket.status, Ticket.priority, Operator.name.label("assignee"))
            .outerjoin(Operator, Operator.id == Ticket.assignee_id)
            .where(Ticket.ref.in_(refs))
        )
        for t in db.execute(watched):
            rows[t.ref] = {
                "status": t.status,
                "status_label": statuses.get(t.status, t.status),
                "priority": t.priority,
                "assignee": t.assignee or "",
            }
    counts = waiting_counts() if op is not None and op.role in STAFF else {}
    return jsonify(new_tickets=int(new_count or 0), tickets=rows, **counts)


@bp.post("/views")
@login_required()
def save_view() -> Any:
    op = signed_in_operator()
    name = (request.form.get("name") or "").strip()[:100]
    if not name:
        flash(_("A saved view needs a name."), "error")
        return redirect(url_for("queue.index"))
    query = QueueFilter.from_args(request.form).to_query_string()
    view = g.db.scalar(
        select(SavedView).where(SavedView.operator_id == op.id, SavedView.name == name)
    )
    if view is None:
        view = SavedView(operator_id=op.id, name=name)
        g.db.add(view)
    view.query = query
    g.db.commit()
    flash(_("View saved."))
    return redirect(url_for("queue.index") + (f"?{query}" if query else ""))


@bp.post("/views/<int:view_id>/delete")
@login_required()
def delete_view(view_id: int) -> Any:
    view = g.db.get(SavedView, view_id)
    if view is None or view.operator_id != signed_in_operator().id:
        abort(404)
    g.db.delete(view)
    g.db.commit()
    return redirect(url_for("queue.index"))
