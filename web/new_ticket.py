"""A contact entered by hand: a walk-in (來訪), a call on a desk phone, a letter, anything else.

The operator finds the resident (by phone, unit or name) or types who it is, and the ticket goes
through `intake.service.receive` like every other channel's, so routing, the resident's scripted
reply with the reference, and the SLA clocks all apply. The form carries a one-time submission id
(the contact's external id), so a double click or a resubmitted form files one ticket.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from intake.config import HotlineConfig
from intake.constants import HAND_ENTERED_CHANNELS, LANGUAGES, PRIORITIES
from intake.contact import InboundContact
from intake.models import Building, ContactPoint, Resident, Unit
from intake.phones import normalize_email, normalize_phone
from intake.service import receive
from web.auth import STAFF, current_operator, login_required

bp = Blueprint("new_ticket", __name__)
MATCHES = 20
SUBMISSION = re.compile(r"^[0-9a-f]{32}$")
LIMITS = {"name": 200, "phone": 40, "email": 300, "subject": 300, "description": 20000}


@dataclass
class Entered:
    """What the operator typed, checked; `errors` name the fields to fix."""

    channel: str
    resident: Resident | None
    name: str
    phone: str | None
    email: str | None
    subject: str
    description: str
    category: str | None
    priority: str | None
    language: str | None
    errors: dict[str, str]


def _config() -> HotlineConfig:
    return current_app.config["HOTLINE_SETTINGS"].config


def _text(name: str) -> str:
    return (request.form.get(name) or "").strip()[: LIMITS.get(name, 100)]


def find_residents(q: str) -> list[Resident]:
    """Residents whose phone, email, name or unit (e.g. `B-12-3`, `12-3`) matches `q`."""
    q = q.strip()[:100]
    if not q:
        return []
    needle = f"%{q.replace('%', '')}%"
    phone = normalize_phone(q, _config().phone_region)
    values = [phone] if phone else []
    unit_ids = (
        select(Unit.id)
        .join(Building)
        .where(or_(Unit.label.ilike(needle), (Building.code + "-" + Unit.label).ilike(needle)))
    )
    query = (
        select(Resident)
        .options(
            selectinload(Resident.contact_points),
            selectinload(Resident.unit).selectinload(Unit.building),
        )
        .where(
            or_(
                Resident.name.ilike(needle),
                Resident.unit_id.in_(unit_ids),
                Resident.id.in_(
                    select(ContactPoint.resident_id).where(
                        or_(ContactPoint.value.ilike(needle), ContactPoint.value.in_(values))
                    )
                ),
            )
        )
        .order_by(Resident.name, Resident.id)
        .limit(MATCHES)
    )
    return list(g.db.scalars(query))


def _contact_of(resident: Resident, kind: str) -> str | None:
    for point in resident.contact_points:
        if point.kind == kind and not point.unreachable:
            return point.value
    return None


def _entered(config: HotlineConfig) -> Entered:
    errors: dict[str, str] = {}
    channel = request.form.get("channel", "")
    if channel not in HAND_ENTERED_CHANNELS:
        errors["channel"] = _("Choose how the resident reached us.")
    resident = None
    resident_id = request.form.get("resident_id", "")
    if resident_id:
        resident = (
            g.db.scalar(
                select(Resident)
                .options(selectinload(Resident.contact_points))
                .where(Resident.id == int(resident_id))
            )
            if resident_id.isdigit()
            else None
        )
        if resident is None:
            errors["resident_id"] = _("That resident is no longer in the directory.")
    raw_phone = _text("phone")
    phone = normalize_phone(raw_phone, config.phone_region) if raw_phone else None
    if raw_phone and phone is None:
        errors["phone"] = _("This is not a phone number we can call back.")
    raw_email = _text("email")
    email = normalize_email(raw_email)
    if raw_email and email is None:
        errors["email"] = _("This is not an email address.")
    if resident is not None:
        phone = phone or _contact_of(resident, "phone")
        email = email or _contact_of(resident, "email")
    description = _text("description")
    if not description:
        errors["description"] = _("Write down what the resident asked for or reported.")
    category = request.form.get("category") or None
    if category is not None and config.category(category) is None:
        errors["category"] = _("Choose a category from the list.")
    priority = request.form.get("priority") or None
    if priority is not None and priority not in PRIORITIES:
        errors["priority"] = _("Choose a priority from the list.")
    language = request.form.get("language") or None
    if language is not None and language not in LANGUAGES:
        errors["language"] = _("Choose a language from the list.")
    return Entered(
        channel=channel,
        resident=resident,
        name=_text("name") or (resident.name if resident else ""),
        phone=phone,
        email=email,
        subject=_text("subject"),
        description=description,
        category=category,
        priority=priority,
        language=language,
        errors=errors,
    )


def _page(entered: Entered | None = None, status: int = 200) -> Any:
    q = (request.args.get("q") or "").strip()[:100]
    chosen_id = request.args.get("resident", type=int)
    chosen = entered.resident if entered else None
    if chosen is None and chosen_id:
        chosen = g.db.scalar(
            select(Resident)
            .options(
                selectinload(Resident.contact_points),
                selectinload(Resident.unit).selectinload(Unit.building),
            )
            .where(Resident.id == chosen_id)
        )
    channel = request.args.get("channel", "walk_in")
    return render_template(
        "new_ticket.html",
        q=q,
        matches=find_residents(q) if q and chosen is None else [],
        chosen=chosen,
        channels=HAND_ENTERED_CHANNELS,
        channel=channel if channel in HAND_ENTERED_CHANNELS else "walk_in",
        config=_config(),
        priorities=PRIORITIES,
        submission=request.form.get("submission") or uuid.uuid4().hex,
        entered=entered,
        form=request.form,
    ), status


@bp.get("/tickets/new")
@login_required(*STAFF)
def form() -> Any:
    return _page()


@bp.post("/tickets/new")
@login_required(*STAFF)
def file() -> Any:
    config = _config()
    submission = request.form.get("submission", "")
    entered = _entered(config)
    if not SUBMISSION.match(submission):
        entered.errors["submission"] = _("The form was not complete; please enter it again.")
    if entered.errors:
        flash(_("The ticket was not filed: please correct the fields marked below."), "error")
        return _page(entered, status=400)
    operator = current_operator()
    contact = InboundContact(
        channel=entered.channel,
        external_id=f"console:{submission}",
        kind="staff_entry",  # what staff took down, not a message the resident sent in
        sender_phone=entered.phone,
        sender_email=entered.email,
        sender_name=entered.name or None,
        subject=entered.subject or None,
        text=entered.description,
        language_hint=entered.language or (entered.resident.language if entered.resident else None),
        category_hint=entered.category,
        priority_hint=entered.priority,
        resident_id=entered.resident.id if entered.resident else None,
        meta={"entered_by": operator.email if operator else None},
    )
    g.db.rollback()  # end the request's transaction: SQLite has one writer, and receive() writes
    receipt = receive(current_app.extensions["hotline_sessions"], contact, config)
    if receipt.duplicate:
        flash(_("This contact was already filed as %(ref)s.", ref=receipt.ticket_ref))
    else:
        flash(_("Ticket %(ref)s filed.", ref=receipt.ticket_ref))
    return redirect(url_for("ticket.show", ref=receipt.ticket_ref), code=303)
