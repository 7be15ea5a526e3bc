"""The desk's half of Twilio: the operator's phone (whisper, accept key, conference), the caller
joining the operator, cold transfer, and the REST calls that ring, bridge, cancel and move legs.

Every caller-operator call is a `<Conference>` named after the desk call ("hub"), so a caller can
be moved out (transfer) without dropping. Decisions live in `intake.desk`; routes here only carry
them out. With no Twilio account the REST calls are recorded for the simulator instead
(`hotline call --operator EMAIL` answers them, `hotline call --press 0` follows the redirects).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint, Response, abort, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException
from twilio.twiml.voice_response import Dial, Enqueue
from werkzeug.exceptions import HTTPException

from intake import desk
from intake.clock import utcnow
from intake.config import Settings
from intake.models import Call, DeskCall, DeskOffer, DeskTransfer, Operator
from voice import filing
from voice.context import app_config, app_settings, db_sessions, param
from voice.dialer import twilio_client
from voice.languages import VoiceLanguage, language
from voice.signature import refuse_unsigned
from voice.twiml import Script, empty

log = logging.getLogger(__name__)
bp = Blueprint("voice_desk", __name__, url_prefix="/voice/desk")
ACCEPT_KEY = "1"


def _id_arg(name: str) -> int:
    value = request.args.get(name, "")
    if not (value.isdigit() and len(value) < 10):
        abort(400, description=f"{name} is required")
    return int(value)


@bp.before_request
def _check_signature() -> Response | None:
    settings = app_settings()
    return refuse_unsigned(
        settings.public_base_url, settings.webhook_auth_token, log, settings.redis_url
    )


@bp.errorhandler(Exception)
def _apologise(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return Response(f"{exc.code} {exc.name}\n", status=exc.code or 500, mimetype="text/plain")
    log.exception("desk webhook failed: %s", request.path)
    script = Script(app_config(), language(app_config(), None), app_settings().public_base_url)
    script.say("voice_fallback")
    script.hangup()
    return script.http()


def _operator_lang(offer: DeskOffer) -> VoiceLanguage:
    return language(app_config(), offer.operator.language)


def _conference(
    script: Script,
    desk_call_id: int,
    action: str,
    *,
    caller: bool = False,
    record: bool = False,
    **query: Any,
) -> None:
    """Caller and desk staff meet in the call's conference. Only the caller's leaving ends it:
    an operator or transfer target who leaves is followed by the app (`intake.desk.staff_left`),
    which hands the caller over, takes them back, requeues them, or hangs up."""
    dial = Dial(action=script.url(action, **query), method="POST")
    extra: dict[str, Any] = {
        "status_callback": script.url("/voice/desk/conference-event", desk=desk_call_id),
        "status_callback_method": "POST",
        "status_callback_event": "start join",
    }
    if record:
        extra["record"] = "record-from-start"
        extra["recording_status_callback"] = script.url("/voice/desk/recording", desk=desk_call_id)
        extra["recording_status_callback_method"] = "POST"
    dial.conference(
        conference_name(desk_call_id),
        start_conference_on_enter=True,
        end_conference_on_exit=caller,
        beep=False,
        **extra,
    )
    script.response.append(dial)


def conference_name(desk_call_id: int) -> str:
    return f"desk-{desk_call_id}"


# --- the operator's phone ---------------------------------------------------------------------


@bp.post("/whisper")
def whisper() -> Response:
    """The operator answered the offer: who is calling, and a key to take the call."""
    offer_id = _id_arg("offer")
    with db_sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None:
            abort(404, description="no such offer")
        script = Script(app_config(), _operator_lang(offer), app_settings().public_base_url)
        if offer.status != "ringing":
            script.say("voice_desk_caller_gone")
            script.hangup()
            return script.http()
        if offer.call_sid is None and param("CallSid", 64):
            offer.call_sid = param("CallSid", 64)
            session.commit()
        facts = desk.caller_facts(session, offer.desk_call)
    gather = script.gather("/voice/desk/accept", num_digits=1, timeout=8, offer=offer_id)
    script.say(
        "voice_desk_whisper",
        gather,
        name=(facts["resident"] or {}).get("name") or "",
        unit=facts["unit"] or "",
        phone=facts["phone"] or "",
        caller_language=facts["language"] or "",
        open_tickets=len(facts["open_tickets"]),
        key=ACCEPT_KEY,
    )
    script.hangup()  # no key: the offer goes to the next operator
    return script.http()


@bp.post("/accept")
def accept() -> Response:
    offer_id = _id_arg("offer")
    digits = param("Digits", 12)
    with db_sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None:
            abort(404, description="no such offer")
        script = Script(app_config(), _operator_lang(offer), app_settings().public_base_url)
        if digits != ACCEPT_KEY:
            desk.offer_missed(session, app_config(), offer_id, now=utcnow())
            desk.distribute(session, app_config(), utcnow())
            session.commit()
            script.hangup()
            return script.http()
        won = desk.accept(session, offer_id, utcnow())
        desk_call_id = offer.desk_call_id
        session.commit()
    if won is None:
        script.say("voice_desk_caller_gone")
        script.hangup()
        return script.http()
    # Recorded from the start: the caller hears the consent phrase before joining (`join`).
    record = app_config().voice.desk.record_calls
    _conference(script, desk_call_id, "/voice/desk/operator-done", record=record, offer=offer_id)
    return script.http()


@bp.post("/operator-done")
def operator_done() -> Response:
    """The operator's conference leg ended (the caller left, or the operator hung up)."""
    offer_id = _id_arg("offer")
    duration = param("DialCallDuration", 9)
    with db_sessions()() as session:
        desk.operator_hung_up(
            session,
            app_config(),
            offer_id,
            talk_seconds=int(duration) if duration.isdigit() else None,
            now=utcnow(),
        )
        desk.distribute(session, app_config(), utcnow())
        session.commit()
    script = Script(app_config(), language(app_config(), None), app_settings().public_base_url)
    script.hangup()
    return script.http()


@bp.post("/offer-status")
def offer_status() -> Response:
    """Status callback of the operator's leg: unanswered, busy or hung up without the key → the
    next operator is offered the caller."""
    offer_id = _id_arg("offer")
    status = param("CallStatus", 20)
    if status in ("completed", "busy", "no-answer", "failed", "canceled"):
        with db_sessions()() as session:
            if desk.offer_missed(session, app_config(), offer_id, now=utcnow()):
                desk.distribute(session, app_config(), utcnow())
            session.commit()
    return empty()


# --- the caller, joined to the operator ---------------------------------------------------------


def _caller_script(desk_call: DeskCall) -> Script:
    return Script(
        app_config(), language(app_config(), desk_call.language), app_settings().public_base_url
    )


@bp.post("/join")
def join() -> Response:
    """The caller, dequeued by REST, joins the operator's conference."""
    desk_call_id = _id_arg("desk")
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            abort(404, description="no such desk call")
        call_id, script = desk_call.call_id, _caller_script(desk_call)
        record = app_config().voice.desk.record_calls and not (desk_call.meta or {}).get(
            "recordings"
        )
    filing.record_step(db_sessions(), call_id, "bridged")
    if record:
        script.say("voice_desk_recording_consent")  # consent first, then the recording starts
    script.say("voice_desk_connected")
    _conference(
        script,
        desk_call_id,
        "/voice/desk/caller-done",
        caller=True,
        record=bool(record),
        desk=desk_call_id,
    )
    return script.http()


@bp.post("/caller-done")
def caller_done() -> Response:
    """The caller's conference leg ended: hung up, or moved out by a transfer (then Twilio ignores
    this answer and runs the transfer's TwiML)."""
    desk_call_id = _id_arg("desk")
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        moving = desk_call is not None and _moved_out(session, desk_call)
        if desk_call is not None and not moving:
            desk.caller_hung_up(session, desk_call, utcnow())
            session.commit()
    return empty()


def _moved_out(session: Session, desk_call: DeskCall) -> bool:
    """The caller's leg left the conference because a cold transfer (or a requeue) moved it."""
    transfer = desk.live_transfer(session, desk_call.id)
    cold = transfer is not None and transfer.mode == "cold"
    return cold or desk_call.transferred_to == desk.QUEUE_TARGET


# --- cold transfer ------------------------------------------------------------------------------


def _on_call(session: Session, desk_call: DeskCall, target: str) -> list[str]:
    """A cold transfer's numbers: the department's on-call in turn, or the colleague's device."""
    transfer = desk.live_transfer(session, desk_call.id)
    if transfer is not None and transfer.target == target:
        return desk.transfer_numbers(session, transfer, app_config())
    dept = app_config().department(target)
    return list(dept.on_call) if dept else []


def dial_device(dial: Dial, device: str) -> None:
    """`<Client>` for an operator's browser softphone, `<Number>` for a phone."""
    if device.startswith("client:"):
        dial.client(device.removeprefix("client:"))
    else:
        dial.number(device)


@bp.post("/transfer")
def transfer() -> Response:
    desk_call_id = _id_arg("desk")
    index = int(request.args.get("i", "0")) if request.args.get("i", "0").isdigit() else 0
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            abort(404, description="no such desk call")
        script = _caller_script(desk_call)
        target = desk_call.transferred_to or "operators"
        numbers = _on_call(session, desk_call, target) if target != "operators" else []
    if index >= len(numbers):
        return _back_to_queue(desk_call_id, script, said=index > 0 or target != "operators")
    if index == 0:
        script.say("voice_desk_transferring")
    attrs: dict[str, Any] = {
        "action": script.url("/voice/desk/transferred", desk=desk_call_id, i=index),
        "method": "POST",
        "timeout": app_config().voice.dial_timeout_seconds,
        "answer_on_bridge": True,
    }
    if app_settings().twilio_number:
        attrs["caller_id"] = app_settings().twilio_number
    dial = Dial(**attrs)
    dial_device(dial, numbers[index])
    script.response.append(dial)
    return script.http()


@bp.post("/transferred")
def transferred() -> Response:
    desk_call_id = _id_arg("desk")
    index = int(request.args.get("i", "0")) if request.args.get("i", "0").isdigit() else 0
    status = param("DialCallStatus", 20)
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            abort(404, description="no such desk call")
        script = _caller_script(desk_call)
        if status in ("completed", "answered"):
            desk_call.meta = {**(desk_call.meta or {}), "transfer_answered_by": index}
            desk.cold_transfer_ended(session, desk_call, answered=True, now=utcnow())
            if desk_call.status == desk.CONNECTED:
                desk_call.status, desk_call.ended_at = "ended", utcnow()
            session.commit()
            script.hangup()
            return script.http()
    script.redirect("/voice/desk/transfer", desk=desk_call_id, i=index + 1)
    return script.http()


def _back_to_queue(desk_call_id: int, script: Script, *, said: bool) -> Response:
    """Nobody took the transfer: the caller waits for the next operator, never dropped."""
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        assert desk_call is not None
        desk.cold_transfer_ended(session, desk_call, answered=False, now=utcnow())
        desk_call.status, desk_call.transferred_to = desk.WAITING, None
        desk.distribute(session, app_config(), utcnow())
        session.commit()
    if said:
        script.say("voice_desk_transfer_failed")
    enqueue = Enqueue(
        name=app_config().voice.operator_queue,
        action=script.url("/voice/queue/left"),
        method="POST",
        wait_url=script.url("/voice/queue/wait"),
        wait_url_method="POST",
    )
    script.response.append(enqueue)
    return script.http()


# --- the conference, and warm transfer ----------------------------------------------------------


@bp.post("/conference-event")
def conference_event() -> Response:
    """Conference status callback: remember the conference's SID (holding the caller needs it)."""
    desk_call_id = _id_arg("desk")
    conference_sid = param("ConferenceSid", 64)
    if conference_sid.startswith("CF"):
        with db_sessions()() as session:
            desk_call = session.get(DeskCall, desk_call_id)
            if desk_call is not None and (desk_call.meta or {}).get("conference_sid") is None:
                desk_call.meta = {**(desk_call.meta or {}), "conference_sid": conference_sid}
                session.commit()
    return empty()


@bp.post("/recording")
def recording() -> Response:
    """The conference's recording status callback: the recording goes to the call's ticket."""
    desk_call_id = _id_arg("desk")
    sid = param("RecordingSid", 64)
    if not sid.startswith("RE") or param("RecordingStatus", 20) not in ("", "completed"):
        return empty()
    duration = param("RecordingDuration", 9)
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            abort(404, description="no such desk call")
        desk.recording_done(
            session,
            desk_call,
            {
                "sid": sid,
                "url": param("RecordingUrl", 500) or None,
                "duration": int(duration) if duration.isdigit() else None,
            },
        )
        session.commit()
    return empty()


@bp.post("/on-hold")
def on_hold() -> Response:
    """What a held caller hears: a word, some quiet, again."""
    desk_call_id = _id_arg("desk")
    with db_sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            abort(404, description="no such desk call")
        script = _caller_script(desk_call)
    script.say("voice_desk_on_hold")
    script.response.pause(length=15)
    script.redirect("/voice/desk/on-hold", desk=desk_call_id)
    return script.http()


def _transfer_arg(session: Session) -> DeskTransfer:
    transfer = session.get(DeskTransfer, _id_arg("transfer"))
    if transfer is None:
        abort(404, description="no such transfer")
    return transfer


@bp.post("/consult")
def consult() -> Response:
    """The transfer's target picked up: who is handing which caller over, and a key to take it."""
    with db_sessions()() as session:
        transfer = _transfer_arg(session)
        target_lang = language(app_config(), _target_language(session, transfer))
        script = Script(app_config(), target_lang, app_settings().public_base_url)
        if transfer.status != "dialling" or transfer.desk_call.status != desk.CONNECTED:
            script.say("voice_desk_caller_gone")
            script.hangup()
            return script.http()
        facts = desk.caller_facts(session, transfer.desk_call)
        gather = script.gather(
            "/voice/desk/consult-accept", num_digits=1, timeout=8, transfer=transfer.id
        )
        script.say(
            "voice_desk_transfer_whisper",
            gather,
            operator=transfer.from_operator.name,
            name=(facts["resident"] or {}).get("name") or "",
            unit=facts["unit"] or "",
            phone=facts["phone"] or "",
            key=ACCEPT_KEY,
        )
    script.hangup()  # no key: the transfer fails over (status callback)
    return script.http()


def _target_language(session: Session, transfer: DeskTransfer) -> str | None:
    if transfer.target_operator_id is not None:
        op = session.get(Operator, transfer.target_operator_id)
        return op.language if op is not None else None
    return None


@bp.post("/consult-accept")
def consult_accept() -> Response:
    digits = param("Digits", 12)
    with db_sessions()() as session:
        transfer = _transfer_arg(session)
        script = Script(
            app_config(),
            language(app_config(), _target_language(session, transfer)),
            app_settings().public_base_url,
        )
        if digits != ACCEPT_KEY:
            desk.transfer_failed(session, app_config(), transfer, utcnow())
            session.commit()
            script.hangup()
            return script.http()
        taken = desk.transfer_answered(session, transfer, utcnow())
        transfer_id, desk_call_id = transfer.id, transfer.desk_call_id
        session.commit()
    if not taken:
        script.say("voice_desk_caller_gone")
        script.hangup()
        return script.http()
    _conference(script, desk_call_id, "/voice/desk/target-done", transfer=transfer_id)
    return script.http()


@bp.post("/consult-status")
def consult_status() -> Response:
    """Status callback of the target's leg: not answered, busy, or hung up before the key."""
    status = param("CallStatus", 20)
    if status in ("completed", "busy", "no-answer", "failed", "canceled"):
        with db_sessions()() as session:
            transfer = _transfer_arg(session)
            desk.transfer_failed(session, app_config(), transfer, utcnow())
            session.commit()
    return empty()


@bp.post("/target-done")
def target_done() -> Response:
    """The transfer's target left the conference."""
    with db_sessions()() as session:
        transfer = _transfer_arg(session)
        desk.staff_left(session, transfer.desk_call, target_of=transfer, now=utcnow())
        session.commit()
    script = Script(app_config(), language(app_config(), None), app_settings().public_base_url)
    script.hangup()
    return script.http()


# --- REST: what the worker does -----------------------------------------------------------------


def _url(settings: Settings, path: str, **query: Any) -> str:
    return Script(settings.config, language(settings.config, None), settings.public_base_url).url(
        path, **query
    )


def _local_sid(key: str) -> str:
    return "CA" + hashlib.sha256(f"local:{key}".encode()).hexdigest()[:32]


def dial_address(device: str) -> str:
    """What Twilio dials for an operator's or a target's device: a number or SIP address as it
    is, anything else a browser headset (`client:` identity)."""
    return device if device.startswith(("+", "sip:", "client:")) else f"client:{device}"


def ring(session: Session, settings: Settings, offer: DeskOffer) -> str | None:
    """Ring the operator's device for `offer` (once: a sid already recorded is not rung again)."""
    if offer.status != "ringing" or offer.call_sid:
        return offer.call_sid
    row = desk.presence(session, offer.operator)
    device = row.device
    if not device:
        return None
    ring_seconds = settings.config.voice.desk.ring_seconds
    if not settings.twilio_configured:
        offer.call_sid = _local_sid(f"desk-offer:{offer.id}")
        return offer.call_sid
    to = dial_address(device)
    created = twilio_client(settings).calls.create(
        to=to,
        from_=settings.twilio_number or "",
        url=_url(settings, "/voice/desk/whisper", offer=offer.id),
        method="POST",
        status_callback=_url(settings, "/voice/desk/offer-status", offer=offer.id),
        status_callback_method="POST",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        timeout=ring_seconds,
    )
    offer.call_sid = created.sid
    return created.sid


def redirect_caller(session: Session, settings: Settings, call_sid: str, url: str) -> None:
    """Move the caller's live leg to `url` (out of the queue or out of the conference)."""
    if not settings.twilio_configured:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is not None:
            redirects = list((call.meta or {}).get("desk_redirects") or [])
            call.meta = {**(call.meta or {}), "desk_redirects": [*redirects, url]}
        return
    twilio_client(settings).calls(call_sid).update(url=url, method="POST")


def bridge(session: Session, settings: Settings, offer: DeskOffer) -> None:
    redirect_caller(
        session,
        settings,
        offer.desk_call.call_sid,
        _url(settings, "/voice/desk/join", desk=offer.desk_call_id),
    )


def move_to_transfer(session: Session, settings: Settings, desk_call: DeskCall) -> None:
    redirect_caller(
        session,
        settings,
        desk_call.call_sid,
        _url(settings, "/voice/desk/transfer", desk=desk_call.id),
    )


def stop_ringing(settings: Settings, offer: DeskOffer) -> None:
    """Hang up an offer nobody took (its caller left, or it rang too long)."""
    if not settings.twilio_configured or not offer.call_sid:
        return
    client = twilio_client(settings)
    for status in ("canceled", "completed"):
        try:
            client.calls(offer.call_sid).update(status=status)
            return
        except TwilioException as exc:
            log.info("could not set %s on offer call %s: %s", status, offer.call_sid, exc)


def _conference_sid(desk_call: DeskCall) -> str | None:
    return (desk_call.meta or {}).get("conference_sid")


def hold_caller(session: Session, settings: Settings, desk_call: DeskCall, hold: bool) -> str:
    """Put the caller on hold in the conference (or take them off it)."""
    if desk_call.status != desk.CONNECTED:
        return "not connected"
    url = _url(settings, "/voice/desk/on-hold", desk=desk_call.id)
    if not settings.twilio_configured:
        call = desk_call.call
        holds = list((call.meta or {}).get("desk_holds") or [])
        call.meta = {**(call.meta or {}), "desk_holds": [*holds, hold]}
        return "recorded"
    conference_sid = _conference_sid(desk_call)
    if conference_sid is None:
        log.warning("no conference SID for desk call %s: the caller is not held", desk_call.id)
        return "no conference"
    participant = (
        twilio_client(settings).conferences(conference_sid).participants(desk_call.call_sid)
    )
    if hold:
        participant.update(hold=True, hold_url=url, hold_method="POST")
    else:
        participant.update(hold=False)
    return "held" if hold else "unheld"


def dial_transfer(session: Session, settings: Settings, transfer: DeskTransfer) -> str | None:
    """Ring the warm transfer's target (its current number); it joins the conference on the key."""
    if transfer.status != "dialling" or transfer.target_call_sid:
        return transfer.target_call_sid
    numbers = desk.transfer_numbers(session, transfer, settings.config)
    if transfer.number_index >= len(numbers):
        return None
    number = numbers[transfer.number_index]
    if not settings.twilio_configured:
        transfer.target_call_sid = _local_sid(
            f"desk-transfer:{transfer.id}:{transfer.number_index}"
        )
        return transfer.target_call_sid
    to = dial_address(number)
    created = twilio_client(settings).calls.create(
        to=to,
        from_=settings.twilio_number or "",
        url=_url(settings, "/voice/desk/consult", transfer=transfer.id),
        method="POST",
        status_callback=_url(settings, "/voice/desk/consult-status", transfer=transfer.id),
        status_callback_method="POST",
        status_callback_event=["completed"],
        timeout=settings.config.voice.desk.ring_seconds,
    )
    transfer.target_call_sid = created.sid
    return created.sid


def hang_up(settings: Settings, call_sid: str) -> None:
    """End a live leg (the caller left alone, or a transfer target nobody needs any more)."""
    if not settings.twilio_configured:
        return
    try:
        twilio_client(settings).calls(call_sid).update(status="completed")
    except TwilioException as exc:
        log.info("could not hang up %s: %s", call_sid, exc)


__all__ = ["bp"]
