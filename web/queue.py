"""The queue: every channel in one list, most urgent and newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake.models import Ticket
from web.auth import current_operator, login_required

bp = Blueprint("queue", __name__)
PAGE_SIZE = 50


def visible_tickets() -> Any:
    """Department staff see only their department's tickets."""
    query = select(Ticket)
    op = current_operator()
    if op is not None and op.role == "department":
        query = query.where(Ticket.department_id == op.department_id)
    return query


@bp.get("/")
@login_required()
def index() -> Any:
    tickets = g.db.scalars(
        visible_tickets()
        .options(selectinload(Ticket.department), selectinload(Ticket.resident))
        .where(Ticket.status != "closed")
        .order_by(Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc())
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "queue.html",
        tickets=tickets,
        operator=current_operator(),
        config=current_app.config["HOTLINE_SETTINGS"].config,
    )


@bp.get("/tickets/<ref>")
@login_required()
def ticket(ref: str) -> Any:
    found = g.db.scalar(visible_tickets().where(Ticket.ref == ref.upper()))
    if found is None:
        abort(404)
    return render_template(
        "ticket.html",
        ticket=found,
        operator=current_operator(),
        config=current_app.config["HOTLINE_SETTINGS"].config,
    )
