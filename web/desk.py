"""The operator's desk in the console: presence, the screen pop and call panel, the wallboard.

`/desk` polls `/desk/live.json` every second: an offer ringing the operator's phone shows the
caller at once and stays open for the whole call. The call panel files a ticket for the live call
(the same intake path as every channel) or attaches the call to an existing ticket, transfers it,
and asks for a wrap-up disposition. `/wallboard` (supervisors) polls `/wallboard.json`.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
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
from sqlalchemy import select
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from intake import desk
from intake.config import HotlineConfig, Settings
from intake.constants import PRIORITIES
from intake.contact import InboundContact
from intake.models import DeskCall, DeskTransfer, Operator, OperatorPresence, Ticket
from intake.service import receive
from intake.tickets import enqueue_after_commit
from web.auth import MANAGERS, STAFF, current_operator, login_required
from web.i18n import current_language

bp = Blueprint("desk", __name__)


def _config() -> HotlineConfig:
    return current_app.config["HOTLINE_SETTINGS"].config


def _me() -> Operator:
    op = current_operator()
    assert op is not None
    return op


def state_labels() -> dict[str, str]:
    return {
        "available": _("Available"),
        "on_call": _("On a call"),
        "wrap_up": _("Wrap-up"),
        "away": _("Away"),
    }


def disposition_labels() -> dict[str, str]:
    return {
        "resolved_on_call": _("Resolved on the call"),
        "ticket_filed": _("Ticket filed"),
        "transferred": _("Transferred"),
        "information_given": _("Information given"),
        "wrong_number": _("Wrong number"),
    }


def language_labels() -> dict[str, str]:
    return {
        "zh-Hant": _("Mandarin"),
        "zh-Hans": _("Mandarin"),
        "yue": _("Cantonese"),
        "en": _("English"),
    }


@bp.post("/desk/presence")
@login_required(*STAFF)
def set_presence() -> Any:
    state = request.form.get("state", "")
    if state not in desk.MANUAL_STATES:
        abort(400, description="state must be available or away")
    desk.set_state(g.db, _me(), state)
    desk.distribute(g.db, _config())
    g.db.commit()
    target = request.form.get("next") or url_for("desk.index")
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


TOKEN_TTL_SECONDS = 3600


def _settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def _softphone_missing() -> str:
    return _(
        "The browser softphone is not configured "
        "(TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET are missing)."
    )


@bp.get("/desk/token.json")
@login_required(*STAFF)
def softphone_token() -> Any:
    """A Twilio Access Token for the operator's browser (Voice SDK): incoming calls only."""
    settings = _settings()
    if not settings.softphone_configured:
        return jsonify({"error": _softphone_missing()}), 503
    identity = desk.client_identity(_me())
    token = AccessToken(
        settings.twilio_account_sid or "",
        settings.twilio_api_key_sid or "",
        settings.twilio_api_key_secret or "",
        identity=identity,
        ttl=TOKEN_TTL_SECONDS,
    )
    token.add_grant(VoiceGrant(incoming_allow=True))
    jwt = token.to_jwt()
    return jsonify(
        {
            "token": jwt.decode() if isinstance(jwt, bytes) else jwt,
            "identity": identity,
            "ttl": TOKEN_TTL_SECONDS,
        }
    )


@bp.post("/desk/headset")
@login_required(*STAFF)
def headset() -> Any:
    """Offers ring the browser softphone (headset on) or the operator's phone (off)."""
    on = request.form.get("headset") == "on"
    if on and not _settings().softphone_configured:
        flash(_("The browser softphone is not set up yet; ask an administrator."), "error")
        return _back()
    desk.set_headset(g.db, _me(), on)
    g.db.commit()
    return _back()


@bp.get("/desk")
@login_required(*STAFF)
def index() -> Any:
    row = desk.presence(g.db, _me())
    g.db.commit()
    departments = [d for d in _config().departments if d.on_call]
    colleagues = g.db.scalars(
        select(Operator)
        .where(
            Operator.active.is_(True),
            Operator.role.in_(desk.DESK_ROLES),
            Operator.id != _me().id,
        )
        .order_by(Operator.name)
    ).all()
    return render_template(
        "desk.html",
        colleagues=colleagues,
        softphone=_settings().softphone_configured,
        headset_on=(row.device or "").startswith("client:"),
        presence=row,
        dispositions=_config().voice.desk.dispositions,
        disposition_labels=disposition_labels(),
        departments=departments,
        categories=_config().categories,
        priorities=PRIORITIES,
    )


def _live(op: Operator) -> dict[str, Any]:
    row = desk.presence(g.db, op)
    labels = state_labels()
    data: dict[str, Any] = {
        "state": row.state,
        "state_label": labels.get(row.state, row.state),
        "call": None,
    }
    offer = desk.live_call_of(g.db, op.id)
    desk_call: DeskCall | None = offer.desk_call if offer is not None else None
    phase = "ringing" if offer is not None and offer.status == "ringing" else "talking"
    if desk_call is None and row.state == "wrap_up":
        desk_call, phase = desk.last_call_of(g.db, op.id), "wrap_up"
    if desk_call is not None:
        facts = desk.caller_facts(g.db, desk_call)
        facts["phase"] = phase
        facts["offer_id"] = offer.id if offer is not None else None
        facts["language_label"] = language_labels().get(facts["language"] or "", "")
        facts["disposition"] = desk_call.disposition
        facts["transferred_to"] = desk_call.transferred_to
        facts["transfer"] = _transfer_facts(desk_call)
        if desk_call.ticket_id is not None:
            facts["ticket_ref"] = g.db.scalar(
                select(Ticket.ref).where(Ticket.id == desk_call.ticket_id)
            )
        data["call"] = facts
    return data


def _transfer_facts(desk_call: DeskCall) -> dict[str, Any] | None:
    transfer = g.db.scalar(
        select(DeskTransfer)
        .where(DeskTransfer.desk_call_id == desk_call.id)
        .order_by(DeskTransfer.id.desc())
    )
    if transfer is None:
        return None
    return {
        "id": transfer.id,
        "mode": transfer.mode,
        "target": transfer.target,
        "target_label": _target_label(transfer.target),
        "status": transfer.status,
        "status_label": transfer_labels().get(transfer.status, ""),
    }


def _target_label(target: str) -> str:
    if target == desk.QUEUE_TARGET:
        return _("Another operator")
    if "@" in target:
        name = g.db.scalar(select(Operator.name).where(Operator.email == target))
        return name or target
    dept = _config().department(target)
    return dept.names.get(current_language(), target) if dept is not None else target


@bp.get("/desk/live.json")
@login_required(*STAFF)
def live() -> Any:
    data = _live(_me())
    g.db.commit()
    return jsonify(data)


def _my_call(desk_call_id: int) -> DeskCall:
    desk_call = g.db.get(DeskCall, desk_call_id)
    if desk_call is None:
        abort(404)
    if desk_call.operator_id != _me().id:
        abort(403, description="this call is not yours")
    return desk_call


def _back() -> Any:
    return redirect(url_for("desk.index"))


@bp.post("/desk/calls/<int:desk_call_id>/ticket")
@login_required(*STAFF)
def file_ticket(desk_call_id: int) -> Any:
    """A new ticket for the live call, through the one intake path (idempotent per call)."""
    desk_call = _my_call(desk_call_id)
    description = (request.form.get("description") or "").strip()[:4000]
    category = request.form.get("category") or None
    priority = request.form.get("priority") or None
    if not description:
        flash(_("Describe what the caller reported."), "error")
        return _back()
    if category is not None and _config().category(category) is None:
        abort(400, description="unknown category")
    if priority is not None and priority not in PRIORITIES:
        abort(400, description="unknown priority")
    call = desk_call.call
    g.db.commit()  # intake takes its own transaction (SQLite has one writer at a time)
    contact = InboundContact(
        channel="voice",
        external_id=f"desk:{desk_call.call_sid}",
        kind="call",
        sender_phone=call.from_number,
        recipient=call.to_number,
        text=description,
        language_hint=_written(desk_call.language),
        category_hint=category,
        priority_hint=priority,
        meta={"call_sid": desk_call.call_sid, "operator": _me().email},
    )
    sessions = current_app.extensions["hotline_sessions"]
    receipt = receive(sessions, contact, _config())
    g.db.expire_all()
    ticket = g.db.get(Ticket, receipt.ticket_id)
    assert ticket is not None
    desk_call = _my_call(desk_call_id)
    desk.attach_ticket(g.db, desk_call, ticket, _me())
    if desk_call.disposition is None:
        desk_call.disposition = "ticket_filed"
    g.db.commit()
    flash(_("Ticket %(ref)s filed for this call.", ref=ticket.ref), "ok")
    return _back()


def _written(spoken: str | None) -> str | None:
    return {"yue": "zh-Hant"}.get(spoken or "", spoken)


@bp.post("/desk/calls/<int:desk_call_id>/attach")
@login_required(*STAFF)
def attach(desk_call_id: int) -> Any:
    desk_call = _my_call(desk_call_id)
    ref = (request.form.get("ref") or "").strip().upper()[:20]
    ticket = g.db.scalar(select(Ticket).where(Ticket.ref == ref)) if ref else None
    if ticket is None:
        flash(_("No ticket with that number."), "error")
        return _back()
    desk.attach_ticket(g.db, desk_call, ticket, _me())
    g.db.commit()
    flash(_("The call was added to %(ref)s.", ref=ticket.ref), "ok")
    return _back()


@bp.post("/desk/calls/<int:desk_call_id>/disposition")
@login_required(*STAFF)
def disposition(desk_call_id: int) -> Any:
    desk_call = _my_call(desk_call_id)
    try:
        desk.set_disposition(desk_call, request.form.get("disposition", ""), _config())
    except ValueError:
        abort(400, description="unknown disposition")
    g.db.commit()
    flash(_("Wrap-up saved."), "ok")
    return _back()


@bp.post("/desk/calls/<int:desk_call_id>/transfer")
@login_required(*STAFF)
def transfer(desk_call_id: int) -> Any:
    """Warm or cold transfer of the operator's live call (`target`: a department, "operators"
    for the queue, or a colleague's email)."""
    desk_call = _my_call(desk_call_id)
    target = (request.form.get("target") or request.form.get("department") or "").strip()[:254]
    mode = request.form.get("mode") or "cold"
    try:
        desk.request_transfer(g.db, desk_call, target, _config(), _me(), mode=mode)
    except ValueError:
        flash(_("This call cannot be transferred there."), "error")
        return _back()
    g.db.commit()
    if mode == "warm":
        flash(_("Calling the colleague; the caller is on hold."), "ok")
    else:
        flash(_("Transferring the caller."), "ok")
    return _back()


@bp.post("/desk/calls/<int:desk_call_id>/hand-over")
@login_required(*STAFF)
def hand_over(desk_call_id: int) -> Any:
    """Warm transfer: the colleague has the caller now; the operator's leg is hung up."""
    desk_call = _my_call(desk_call_id)
    transfer = desk.live_transfer(g.db, desk_call.id)
    offer = desk.live_call_of(g.db, _me().id)
    if transfer is None or transfer.status != "consulting" or offer is None:
        flash(_("No colleague is on the line yet."), "error")
        return _back()
    enqueue_after_commit(
        g.db,
        "desk_leave_call",
        queue="urgent",
        dedupe_key=f"desk:leave:{offer.id}",
        offer_id=offer.id,
    )
    g.db.commit()
    flash(_("You leave the call; the colleague has the caller."), "ok")
    return _back()


def transfer_labels() -> dict[str, str]:
    return {
        "dialling": _("Calling the colleague…"),
        "consulting": _("The colleague is on the line; the caller is on hold."),
        "completed": _("Transferred."),
        "failed": _("The colleague did not take the call."),
        "canceled": _("The transfer was cancelled."),
    }


@bp.get("/wallboard")
@login_required(*MANAGERS)
def wallboard() -> Any:
    return render_template("wallboard.html", figures=_figures())


def _figures() -> dict[str, Any]:
    figures = desk.figures(g.db, _config())
    figures["operator_list"] = desk.operators_list(g.db)
    g.db.commit()
    return figures


@bp.get("/wallboard.json")
@login_required(*MANAGERS)
def wallboard_json() -> Any:
    return jsonify(_figures())


def install(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _presence_context() -> dict[str, Any]:
        if "db" not in g:
            return {}
        op = current_operator()
        if op is None or op.role not in STAFF:
            return {}
        row = g.db.get(OperatorPresence, op.id)
        return {
            "desk_state": row.state if row is not None else "away",
            "desk_states": state_labels(),
        }
