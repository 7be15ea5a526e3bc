"""The ticket page: its whole story on one timeline, and everything an operator does to it.

Every change is written to the ticket's timeline (`record_event`) with the operator's email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
    send_file,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake import lifecycle
from intake.callbacks import schedule_callback
from intake.constants import PRIORITIES, STATUSES
from intake.models import (
    Attachment,
    Building,
    Call,
    Callback,
    Department,
    Interaction,
    Operator,
    OutgoingMessage,
    Resident,
    Ticket,
    Unit,
    utcnow,
)
from intake.phones import normalize_phone
from intake.phrases import render
from intake.replies import queue_reply
from intake.sla import sla_state
from intake.tickets import (
    change_category,
    change_department,
    change_priority,
    enqueue_after_commit,
    record_event,
)
from web.auth import (
    STAFF,
    actor,
    can_see,
    current_operator,
    login_required,
    visible_tickets,
)
from web.files import safe_content_type, stored_path
from web.labels import status_label, time_left
from web.phrases import canned_replies, is_canned, render_canned
from web.sanitize import sanitize_email_html, split_quoted_text
from web.signed_in import signed_in_operator

bp = Blueprint("ticket", __name__)
TICKET_CSP = (
    "default-src 'self'; img-src 'self' data: https: http:; media-src 'self'; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


@dataclass
class Entry:
    """One line of the timeline, whatever it came from."""

    at: datetime
    kind: str
    item: Any


def load_ticket(ref: str) -> Ticket:
    """The ticket by its reference, or 404 — also for a department user's foreign ticket."""
    ticket = g.db.scalar(
        visible_tickets()
        .where(Ticket.ref == ref.upper())
        .options(
            selectinload(Ticket.interactions).selectinload(Interaction.attachments),
            selectinload(Ticket.events),
            selectinload(Ticket.callbacks).selectinload(Callback.attempt_log),
            selectinload(Ticket.resident).selectinload(Resident.contact_points),
        )
    )
    if ticket is None:
        abort(404)
    return ticket


# Events whose story another entry already tells: the message, the note or the callback itself.
SHOWN_ELSEWHERE = frozenset({"interaction_added", "note_added", "callback_scheduled"})


def _timeline(ticket: Ticket) -> list[Entry]:
    """One entry per message, call, note, callback and meaningful change, oldest first.

    A sent email is on the timeline once, as the interaction the sender wrote; its outbox row
    shows only while it is not sent (queued, kept back, failed).
    """
    entries = [Entry(i.created_at, "interaction", i) for i in ticket.interactions]
    entries += [
        Entry(e.created_at, "event", e) for e in ticket.events if e.kind not in SHOWN_ELSEWHERE
    ]
    entries += [Entry(c.created_at, "callback", c) for c in ticket.callbacks]
    sent = {i.meta.get("outgoing_id") for i in ticket.interactions if i.meta}
    interactions = {i.id for i in ticket.interactions}
    entries += [
        Entry(m.created_at, "outgoing", m)
        for m in g.db.scalars(select(OutgoingMessage).where(OutgoingMessage.ticket_id == ticket.id))
        if m.id not in sent and m.interaction_id not in interactions
    ]
    return sorted(entries, key=lambda e: (e.at, _rank(e)))


def _rank(entry: Entry) -> int:
    """Within one second: opened, what came in, what the system did, what went out."""
    if entry.kind == "event":
        return 0 if entry.item.kind == "created" else 2
    if entry.kind == "interaction":
        return 3 if entry.item.direction == "out" else 1
    return 3 if entry.kind == "outgoing" else 2


def _calls(ticket: Ticket) -> dict[str, Call]:
    sids = [i.external_id for i in ticket.interactions if i.channel == "voice" and i.external_id]
    calls = g.db.scalars(
        select(Call).where((Call.ticket_id == ticket.id) | Call.call_sid.in_(sids or [""]))
    ).all()
    return {c.call_sid: c for c in calls}


def _email_html(item: Interaction) -> str | None:
    if not item.body_html:
        return None
    by_cid = {
        (a.content_id or "").strip("<>"): url_for("ticket.attachment", attachment_id=a.id)
        for a in item.attachments
        if a.content_id
    }
    return sanitize_email_html(item.body_html, by_cid.get, quoted_label=_("Show quoted text"))


def _clock(due: datetime | None, done: datetime | None, now: datetime) -> dict[str, Any] | None:
    if due is None:
        return None
    reference = done or now
    late = reference > due
    minutes = int(abs((due - reference).total_seconds()) // 60)
    return {
        "due": due,
        "done": done,
        "late": late,
        "minutes": minutes,
        "text": time_left(due, reference),
    }


def _contacts(ticket: Ticket) -> tuple[str | None, str | None]:
    phone, email = ticket.contact_phone, ticket.contact_email
    if ticket.resident is not None:
        for cp in ticket.resident.contact_points:
            if cp.kind == "phone" and not phone and not cp.unreachable:
                phone = cp.value
            if cp.kind == "email" and not email and not cp.unreachable:
                email = cp.value
    return phone, email


def _reply_context(ticket: Ticket) -> dict[str, str | None]:
    config = current_app.config["HOTLINE_SETTINGS"].config
    op = current_operator()
    return {
        "name": ticket.resident.name if ticket.resident else None,
        "ref": ticket.ref,
        "company": config.company(ticket.language),
        "operator": op.name if op else "",
        "subject": ticket.subject,
    }


@bp.get("/tickets/<ref>")
@login_required()
def show(ref: str) -> Any:
    ticket = load_ticket(ref)
    now = utcnow()
    phrase = request.args.get("phrase", "")
    draft = ""
    if phrase and is_canned(phrase):
        draft = render_canned(phrase, ticket.language, **_reply_context(ticket))
    op = current_operator()
    merged_into = g.db.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    duplicates = g.db.scalars(select(Ticket).where(Ticket.merged_into_id == ticket.id)).all()
    phone, email = _contacts(ticket)
    page = render_template(
        "ticket.html",
        ticket=ticket,
        timeline=_timeline(ticket),
        calls=_calls(ticket),
        email_html=_email_html,
        split_quoted=split_quoted_text,
        sla=sla_state(ticket, now),
        first_clock=_clock(ticket.first_response_due_at, ticket.first_responded_at, now),
        resolution_clock=_clock(ticket.resolution_due_at, ticket.resolved_at, now),
        phrases=canned_replies(ticket.language),
        phrase=phrase,
        draft=draft,
        reply_to=email,
        call_phone=phone,
        statuses=STATUSES,
        priorities=PRIORITIES,
        departments=g.db.scalars(select(Department).order_by(Department.code)).all(),
        operators=g.db.scalars(
            select(Operator).where(Operator.active.is_(True)).order_by(Operator.name)
        ).all(),
        merged_into=merged_into,
        duplicates=duplicates,
        can_act=op is not None and op.role in STAFF,
        callbacks_owed=[
            c
            for c in ticket.callbacks
            if c.status in ("scheduled", "in_progress", "needs_operator")
            and c.purpose != "follow_up"
        ],
        now=now,
    )
    # Remote images are parked behind data-remote-src; the operator's click may then load them.
    return page, 200, {"Content-Security-Policy": TICKET_CSP}


def _back(ticket: Ticket) -> Any:
    return redirect(url_for("ticket.show", ref=ticket.ref))


@bp.post("/tickets/<ref>/reply")
@login_required(*STAFF)
def reply(ref: str) -> Any:
    ticket = load_ticket(ref)
    body = (request.form.get("body") or "").strip()
    _phone, default_to = _contacts(ticket)
    to = (request.form.get("to") or default_to or "").strip()
    if not body or not to or "@" not in to:
        flash(_("A reply needs a recipient and some text."), "error")
        return _back(ticket)
    phrase = request.form.get("phrase", "")
    context = _reply_context(ticket)
    subject = (request.form.get("subject") or "").strip() or render(
        "reply_email_subject", ticket.language, subject=ticket.subject, ref=ticket.ref
    )
    queue_reply(
        g.db,
        ticket,
        to=to,
        subject=subject,
        body=body,
        actor=actor(),
        headers={"operator": context["operator"]},
        template=phrase if is_canned(phrase) else None,
    )
    g.db.commit()
    flash(_("Reply queued for sending."))
    return _back(ticket)


@bp.post("/tickets/<ref>/note")
@login_required()
def note(ref: str) -> Any:
    ticket = load_ticket(ref)
    text = (request.form.get("note") or "").strip()
    if not text:
        flash(_("The note is empty."), "error")
        return _back(ticket)
    op = current_operator()
    g.db.add(
        Interaction(
            ticket_id=ticket.id,
            kind="note",
            direction="internal",
            channel="web",
            sender=op.email if op else None,
            body_text=text,
            operator_id=op.id if op else None,
            created_at=utcnow(),
        )
    )
    record_event(g.db, ticket, "note_added", text[:200], actor=actor())
    g.db.commit()
    flash(_("Note added."))
    return _back(ticket)


@bp.post("/tickets/<ref>/update")
@login_required()
def update(ref: str) -> Any:
    """Category, department, priority, status and assignee; department staff may change status."""
    ticket = load_ticket(ref)
    op = current_operator()
    config = current_app.config["HOTLINE_SETTINGS"].config
    form = request.form
    who = actor()
    status = form.get("status")
    if status and status != ticket.status:
        if status not in STATUSES:
            abort(400)
        if status == "resolved":
            flash(_("Resolve with a resolution note below."), "error")
            return _back(ticket)
        try:
            lifecycle.change(g.db, ticket, status, actor=who, config=config)
        except lifecycle.TransitionRefused as refused:
            g.db.rollback()
            flash(refusal_message(refused, ticket, status), "error")
            return _back(ticket)
    if op is not None and op.role in STAFF:
        category = form.get("category")
        if category and category != ticket.category:
            if config.category(category) is None:
                abort(400)
            change_category(g.db, ticket, category, actor=who)
        priority = form.get("priority")
        if priority and priority != ticket.priority:
            if priority not in PRIORITIES:
                abort(400)
            change_priority(g.db, ticket, priority, actor=who)
        if "department" in form:
            dept = (
                g.db.scalar(select(Department).where(Department.code == form["department"]))
                if form["department"]
                else None
            )
            if form["department"] and dept is None:
                abort(400)
            moved = change_department(g.db, ticket, dept, actor=who)
            if moved and ticket.status == "new" and dept is not None:
                lifecycle.route_by_hand(g.db, ticket, actor=who)
        if "assignee" in form:
            _assign(ticket, form["assignee"])
    g.db.commit()
    flash(_("Ticket updated."))
    return _back(ticket)


def _assign(ticket: Ticket, value: str) -> None:
    assignee = None
    if value:
        try:
            assignee = g.db.get(Operator, int(value))
        except ValueError:
            abort(400)
        if assignee is None or not assignee.active:
            abort(400)
    new_id = assignee.id if assignee else None
    if new_id == ticket.assignee_id:
        return
    record_event(
        g.db,
        ticket,
        "assigned",
        assignee.email if assignee else "unassigned",
        actor=actor(),
        assignee=assignee.email if assignee else None,
    )
    ticket.assignee_id = new_id


@bp.post("/tickets/<ref>/take")
@login_required(*STAFF)
def take(ref: str) -> Any:
    ticket = load_ticket(ref)
    op = signed_in_operator()
    _assign(ticket, str(op.id))
    lifecycle.start_work(g.db, ticket, actor=actor())
    g.db.commit()
    return _back(ticket)


@bp.post("/tickets/<ref>/merge")
@login_required(*STAFF)
def merge(ref: str) -> Any:
    """Merge a duplicate into this ticket: the duplicate closes and points here."""
    ticket = load_ticket(ref)
    dup_ref = (request.form.get("duplicate") or "").strip().upper()
    duplicate = g.db.scalar(visible_tickets().where(Ticket.ref == dup_ref))
    if duplicate is None or duplicate.id == ticket.id or duplicate.merged_into_id:
        flash(_("No such ticket to merge."), "error")
        return _back(ticket)
    target = ticket
    seen = {duplicate.id}
    while target.merged_into_id:
        if target.merged_into_id in seen:
            flash(_("No such ticket to merge."), "error")
            return _back(ticket)
        seen.add(target.id)
        target = g.db.get(Ticket, target.merged_into_id)
    duplicate.merged_into_id = ticket.id
    if duplicate.status != "closed":
        lifecycle.close(g.db, duplicate, actor=actor(), note=f"merged into {ticket.ref}")
    record_event(
        g.db, duplicate, "merged", f"merged into {ticket.ref}", actor=actor(), into=ticket.ref
    )
    record_event(
        g.db,
        ticket,
        "merged_in",
        f"{duplicate.ref} merged into this ticket",
        actor=actor(),
        duplicate=duplicate.ref,
    )
    g.db.commit()
    flash(_("Duplicate merged."))
    return _back(ticket)


@bp.post("/tickets/<ref>/link")
@login_required(*STAFF)
def link(ref: str) -> Any:
    """Link the ticket to a resident (by id) and/or a unit (building code + unit label)."""
    ticket = load_ticket(ref)
    who = actor()
    resident_id = (request.form.get("resident_id") or "").strip()
    if resident_id:
        resident = g.db.get(Resident, int(resident_id)) if resident_id.isdigit() else None
        if resident is None:
            flash(_("No such resident."), "error")
            return _back(ticket)
        if resident.id != ticket.resident_id:
            ticket.resident_id = resident.id
            record_event(
                g.db,
                ticket,
                "resident_linked",
                resident.name or str(resident.id),
                actor=who,
                resident_id=resident.id,
            )
            if resident.unit_id and not request.form.get("building"):
                ticket.unit_id = resident.unit_id
    building_code = (request.form.get("building") or "").strip()
    label = (request.form.get("unit") or "").strip()
    if building_code and label:
        unit = g.db.scalar(
            select(Unit).join(Building).where(Building.code == building_code, Unit.label == label)
        )
        if unit is None:
            flash(_("No such unit."), "error")
            return _back(ticket)
        if unit.id != ticket.unit_id:
            ticket.unit_id = unit.id
            record_event(
                g.db, ticket, "unit_linked", f"{building_code} {label}", actor=who, unit_id=unit.id
            )
    g.db.commit()
    flash(_("Ticket updated."))
    return _back(ticket)


@bp.post("/tickets/<ref>/callback")
@login_required(*STAFF)
def callback(ref: str) -> Any:
    ticket = load_ticket(ref)
    config = current_app.config["HOTLINE_SETTINGS"].config
    default_phone, _email = _contacts(ticket)
    raw = (request.form.get("phone") or "").strip()
    phone = normalize_phone(raw, config.phone_region) if raw else default_phone
    if not phone:
        flash(_("A callback needs a valid phone number."), "error")
        return _back(ticket)
    not_before = None
    when = (request.form.get("when") or "").strip()
    if when:
        try:
            not_before = datetime.fromisoformat(when).replace(tzinfo=config.timezone)
        except ValueError:
            flash(_("The callback time is not a valid date and time."), "error")
            return _back(ticket)
    cb = schedule_callback(
        g.db,
        ticket,
        phone=phone,
        purpose="operator_request",
        config=config,
        not_before=not_before,
        actor=actor(),
    )
    lifecycle.owe_reply(
        g.db, ticket, "callback_scheduled", key=f"cb{cb.id}", now=cb.created_at, callback_id=cb.id
    )
    g.db.commit()
    tz = config.timezone
    flash(
        _(
            "Callback scheduled for %(when)s.",
            when=cb.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        )
    )
    return _back(ticket)


@bp.post("/tickets/<ref>/call")
@login_required(*STAFF)
def call_now(ref: str) -> Any:
    """The dialer rings the operator's own phone, then bridges to the resident."""
    ticket = load_ticket(ref)
    op = current_operator()
    assert op is not None
    if not op.phone:
        flash(_("Set your own phone number first (ask an administrator)."), "error")
        return _back(ticket)
    minute = utcnow().strftime("%Y%m%d%H%M")
    enqueue_after_commit(
        g.db,
        "operator_call",
        queue="urgent",
        dedupe_key=f"opcall:{ticket.id}:{op.id}:{minute}",
        ticket_id=ticket.id,
        operator_id=op.id,
    )
    record_event(
        g.db, ticket, "operator_call_requested", f"call requested by {op.email}", actor=op.email
    )
    g.db.commit()
    flash(_("Calling your phone now; answer it to be connected to the resident."))
    return _back(ticket)


@bp.post("/tickets/<ref>/resolve")
@login_required()
def resolve(ref: str) -> Any:
    ticket = load_ticket(ref)
    config = current_app.config["HOTLINE_SETTINGS"].config
    note_text = (request.form.get("resolution_note") or "").strip()[:4000]
    public_text = (request.form.get("public_note") or "").strip()[:4000]
    try:
        done = lifecycle.resolve(
            g.db, ticket, note_text, actor=actor(), config=config, public_note=public_text
        )
    except lifecycle.TransitionRefused as refused:
        g.db.rollback()
        flash(refusal_message(refused, ticket, "resolved"), "error")
        return _back(ticket)
    g.db.commit()
    flash(_("Ticket resolved."))
    tz = config.timezone
    for kept in done.kept:
        flash(
            _(
                "A callback you promised is still due at %(when)s: cancel it on the callbacks "
                "board if it is no longer needed.",
                when=kept.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            ),
            "warning",
        )
    return _back(ticket)


def refusal_message(refused: lifecycle.TransitionRefused, ticket: Ticket, status: str) -> str:
    """The lifecycle's refusal in the operator's language."""
    if refused.code == "needs_note":
        return _("A resolution note is required.")
    if refused.code == "needs_department":
        return _("Choose a department first.")
    return _(
        "A ticket that is %(current)s cannot be set to %(wanted)s.",
        current=status_label(ticket.status),
        wanted=status_label(status),
    )


@bp.get("/attachments/<int:attachment_id>")
@login_required()
def attachment(attachment_id: int) -> Any:
    """A stored file, only for someone who may see its ticket; never rendered as a page."""
    item = g.db.get(Attachment, attachment_id)
    if item is None or not can_see(item.interaction.ticket):
        abort(404)
    path = stored_path(current_app.config["HOTLINE_SETTINGS"].data_dir, item)
    if path is None:
        abort(404)
    response = send_file(
        path,
        mimetype=safe_content_type(item.content_type),
        as_attachment=True,
        download_name=item.filename or f"attachment-{item.id}",
        conditional=True,
        max_age=3600,
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
