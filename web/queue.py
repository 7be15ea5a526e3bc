"""The queue: every channel in one list, filters saved as views, live counters and updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from intake.models import Building, Callback, Department, SavedView, Ticket, Unit, utcnow
from intake.tickets import STATUSES
from web.auth import STAFF, current_operator, login_required, visible_tickets
from web.filters import CHANNELS, PRIORITIES, QueueFilter, page

bp = Blueprint("queue", __name__)
PAGE_SIZE = 50
MAX_WATCHED = 200


def waiting_counts() -> dict[str, int]:
    """Callbacks owed now and missed calls not yet returned: shown on every page."""
    now = utcnow()
    waiting = g.db.scalar(
        select(func.count()).where(Callback.status == "scheduled", Callback.due_at <= now)
    )
    missed = g.db.scalar(
        select(func.count()).where(
            Callback.status.in_(("scheduled", "in_progress")), Callback.purpose == "missed_call"
        )
    )
    return {"waiting_callbacks": int(waiting or 0), "missed_calls": int(missed or 0)}


@bp.get("/")
@login_required()
def index() -> Any:
    op = current_operator()
    flt = QueueFilter.from_args(request.args)
    query = flt.apply(visible_tickets(), op).options(
        selectinload(Ticket.department),
        selectinload(Ticket.resident),
        selectinload(Ticket.assignee),
        selectinload(Ticket.unit).selectinload(Unit.building),
    )
    tickets, next_cursor = page(g.db, query, flt, request.args.get("after"), PAGE_SIZE)
    views = g.db.scalars(
        select(SavedView).where(SavedView.operator_id == op.id).order_by(SavedView.name)  # type: ignore[union-attr]
    ).all()
    return render_template(
        "queue.html",
        tickets=tickets,
        flt=flt,
        next_cursor=next_cursor,
        query_string=flt.to_query_string(),
        views=views,
        statuses=STATUSES,
        channels=CHANNELS,
        priorities=PRIORITIES,
        departments=g.db.scalars(select(Department).order_by(Department.code)).all(),
        buildings=g.db.scalars(select(Building).order_by(Building.code)).all(),
        now=utcnow(),
        newest_id=g.db.scalar(select(func.max(Ticket.id))) or 0,
        config_poll_seconds=current_app.config.get("CONSOLE_POLL_SECONDS", 15),
    )


@bp.get("/queue/poll")
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
    new_count = g.db.scalar(
        flt.apply(visible_tickets(select(func.count(Ticket.id))), op).where(Ticket.id > since_id)
    )
    refs = [r for r in request.args.getlist("ref") if r][:MAX_WATCHED]
    rows = {}
    if refs:
        for t in g.db.scalars(
            visible_tickets().options(selectinload(Ticket.assignee)).where(Ticket.ref.in_(refs))
        ):
            rows[t.ref] = {
                "status": t.status,
                "status_label": _status_label(t.status),
                "priority": t.priority,
                "assignee": t.assignee.name if t.assignee else "",
            }
    counts = waiting_counts() if op is not None and op.role in STAFF else {}
    return jsonify(new_tickets=int(new_count or 0), tickets=rows, **counts)


def _status_label(status: str) -> str:
    from web.labels import status_label

    return status_label(status)


@bp.post("/views")
@login_required()
def save_view() -> Any:
    op = current_operator()
    name = (request.form.get("name") or "").strip()[:100]
    if not name:
        flash(_("A saved view needs a name."), "error")
        return redirect(url_for("queue.index"))
    query = QueueFilter.from_args(request.form).to_query_string()
    view = g.db.scalar(
        select(SavedView).where(SavedView.operator_id == op.id, SavedView.name == name)
    )  # type: ignore[union-attr]
    if view is None:
        view = SavedView(operator_id=op.id, name=name)  # type: ignore[union-attr]
        g.db.add(view)
    view.query = query
    g.db.commit()
    flash(_("View saved."))
    return redirect(url_for("queue.index") + (f"?{query}" if query else ""))


@bp.post("/views/<int:view_id>/delete")
@login_required()
def delete_view(view_id: int) -> Any:
    view = g.db.get(SavedView, view_id)
    if view is None or view.operator_id != current_operator().id:  # type: ignore[union-attr]
        abort(404)
    g.db.delete(view)
    g.db.commit()
    return redirect(url_for("queue.index"))


def sla_state(ticket: Ticket, now: datetime) -> str:
    """`breached`, `at_risk` or `ok` for the queue's colour and the ticket's clocks."""
    from web.filters import AT_RISK_WINDOW

    if ticket.status in ("resolved", "closed"):
        return "ok"
    dues = [ticket.resolution_due_at]
    if ticket.first_responded_at is None:
        dues.append(ticket.first_response_due_at)
    dues = [d for d in dues if d is not None]
    if any(d < now for d in dues):
        return "breached"
    if any(d < now + AT_RISK_WINDOW for d in dues):
        return "at_risk"
    return "ok"
