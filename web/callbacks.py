"""The callbacks board: what the centre owes residents — due, overdue, in progress, failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from intake.models import Callback, Ticket, utcnow
from intake.tickets import record_event
from web.auth import STAFF, actor, current_operator, login_required
from web.signed_in import signed_in_operator

bp = Blueprint("callbacks", __name__)
OVERDUE_AFTER = timedelta(minutes=15)
BOARD_LIMIT = 200
# The worker gave up (its attempts ran out, or the number is wrong): a person must call or write.
NEEDS_A_PERSON = ("failed", "needs_operator")
# What an operator may take: one still waiting for its call, or one the worker gave up on.
TAKEABLE = ("scheduled", *NEEDS_A_PERSON)


@bp.get("/callbacks")
@login_required(*STAFF)
def board() -> Any:
    now = utcnow()
    show = request.args.get("show", "")
    base = select(Callback).options(
        selectinload(Callback.ticket).selectinload(Ticket.resident),
        selectinload(Callback.attempt_log),
    )
    # The header's counters link here: "due" is what 待回電 counts, "missed" what 未接來電 counts.
    if show == "due":
        base = base.where(Callback.status == "scheduled", Callback.due_at <= now)
    elif show == "missed":
        base = base.where(
            Callback.purpose == "missed_call", Callback.status.in_(("scheduled", "in_progress"))
        )
    else:
        show = ""
    scheduled = g.db.scalars(
        base.where(Callback.status == "scheduled").order_by(Callback.due_at).limit(BOARD_LIMIT)
    ).all()
    columns = {
        "overdue": [c for c in scheduled if c.due_at <= now - OVERDUE_AFTER],
        "due": [c for c in scheduled if now - OVERDUE_AFTER < c.due_at <= now],
        "upcoming": [c for c in scheduled if c.due_at > now],
        "in_progress": g.db.scalars(
            base.where(Callback.status == "in_progress")
            .order_by(Callback.due_at)
            .limit(BOARD_LIMIT)
        ).all(),
        "failed": g.db.scalars(
            base.where(Callback.status.in_(NEEDS_A_PERSON))
            .order_by(Callback.updated_at.desc())
            .limit(BOARD_LIMIT)
        ).all(),
    }
    return render_template("callbacks.html", columns=columns, now=now, takeable=TAKEABLE, show=show)


@bp.post("/callbacks/<int:callback_id>/take")
@login_required(*STAFF)
def take(callback_id: int) -> Any:
    """One click: this callback is mine. A conditional update, so two operators can't both win."""
    op = current_operator()
    assert op is not None
    claimed = g.db.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.claimed_by.is_(None))
        .where(Callback.status.in_(TAKEABLE))
        .values(claimed_by=op.id, updated_at=utcnow())
    ).rowcount
    callback = g.db.get(Callback, callback_id)
    if callback is None:
        abort(404)
    if not claimed:
        g.db.rollback()
        flash(_("Someone else has already taken this callback."), "error")
        return redirect(url_for("callbacks.board"))
    record_event(
        g.db,
        callback.ticket,
        "callback_claimed",
        f"callback {callback.id} taken by {op.email}",
        actor=actor(),
        callback_id=callback.id,
    )
    g.db.commit()
    flash(_("Callback taken. Call the resident from the ticket page."))
    return redirect(url_for("ticket.show", ref=callback.ticket.ref))


@bp.post("/callbacks/<int:callback_id>/release")
@login_required(*STAFF)
def release(callback_id: int) -> Any:
    op = signed_in_operator()
    callback = g.db.get(Callback, callback_id)
    if callback is None:
        abort(404)
    if callback.claimed_by != op.id and op.role not in ("supervisor", "admin"):
        abort(403)
    callback.claimed_by = None
    record_event(
        g.db,
        callback.ticket,
        "callback_released",
        f"callback {callback.id} released",
        actor=actor(),
        callback_id=callback.id,
    )
    g.db.commit()
    return redirect(url_for("callbacks.board"))
