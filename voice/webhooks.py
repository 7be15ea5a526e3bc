"""Twilio voice webhooks: the IVR, voicemail, queue and virtual hold, outbound callback calls.

`POST /voice/incoming` and `POST /voice/status` are configured on the number; every other route is
reached only through TwiML returned here. Each request is signature-checked, answers from the
database alone (no network), and is safe to receive twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from twilio.twiml.voice_response import Dial, Enqueue
from werkzeug.exceptions import HTTPException

from intake import lifecycle
from intake.calendar import describe_hours, is_open
from intake.classify import classify
from intake.config import HotlineConfig, Settings
from intake.models import Call, Callback, CallbackAttempt, CallStatusEvent, Resident, Ticket, utcnow
from intake.phrases import spoken_ref
from intake.service import is_participant
from intake.tickets import enqueue_after_commit, format_ref, record_event
from voice import filing
from voice.dialer import FINAL_STATUSES as TERMINAL
from voice.languages import VoiceLanguage, language, menu_languages, resident_language
from voice.paging import on_call_answered
from voice.signature import is_valid, signed_url
from voice.twiml import Script, empty, xml_response

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")

MENU = {
    "1": "repair",
    "2": "complaint",
    "3": "inquiry",
    "4": "progress",
    "9": "emergency",
    "0": "operator",
}
DESCRIBED_TOPICS = ("repair", "complaint", "inquiry")
VOICEMAIL_CALLBACKS = {"after_hours": "after_hours", "voicemail": "voicemail"}
STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}
OPENING_PURPOSES = ("missed_call", "virtual_hold", "voicemail", "after_hours", "operator_request")
MAX_DIGITS = 12


def _settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def _config() -> HotlineConfig:
    return _settings().config


def _sessions() -> sessionmaker[Session]:
    return current_app.extensions["hotline_sessions"]


def _now() -> datetime:
    return utcnow()


def _voice_setting(name: str, default: Any) -> Any:
    return _config().voice.get(name, default)


def _param(name: str, limit: int = 200) -> str:
    return (request.form.get(name) or request.args.get(name) or "")[:limit]


def _int_arg(name: str, default: int = 0) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 9 else default


@bp.before_request
def _check_signature() -> Response | None:
    settings = _settings()
    url = signed_url(settings.public_base_url, request.environ)
    params = request.form if request.method == "POST" else {}
    if not is_valid(
        settings.webhook_auth_token, url, params, request.headers.get("X-Twilio-Signature")
    ):
        log.warning("rejected a voice webhook with a missing or wrong signature: %s", url)
        return Response("missing or wrong X-Twilio-Signature\n", status=403, mimetype="text/plain")
    return None


@bp.errorhandler(Exception)
def _apologise(exc: Exception) -> Response:
    """An unexpected error still gives the caller words and a voicemail, never a dead line."""
    if isinstance(exc, HTTPException):
        return Response(f"{exc.code} {exc.name}\n", status=exc.code or 500, mimetype="text/plain")
    log.exception("voice webhook failed: %s", request.path)
    script = Script(_config(), language(_config(), None), _settings().public_base_url)
    _voicemail(script, "voice_fallback", "voicemail")
    return script.http()


def _call() -> Call:
    if not request.form.get("CallSid"):
        abort(400, description="CallSid is required")
    return filing.ensure_call(_sessions(), request.form, _config())


def _script(call: Call) -> Script:
    return Script(_config(), language(_config(), call.language), _settings().public_base_url)


def _ticket_ref(ticket_id: int | None) -> str | None:
    if ticket_id is None:
        return None
    with _sessions()() as session:
        return session.scalar(select(Ticket.ref).where(Ticket.id == ticket_id))


def _category_name(ticket_id: int, lang: VoiceLanguage) -> str:
    with _sessions()() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        category = _config().category(ticket.category)
        return category.names.get(lang.written, ticket.category) if category else ticket.category


def _hints(lang: VoiceLanguage, topics: tuple[str, ...]) -> str:
    """Speech hints from the configured category keywords in the caller's script (built once)."""
    cache: dict[tuple[str, tuple[str, ...]], str] = current_app.extensions.setdefault(
        "voice_hints", {}
    )
    key = (lang.key, topics)
    if key not in cache:
        cache[key] = _build_hints(lang, topics)
    return cache[key]


def _build_hints(lang: VoiceLanguage, topics: tuple[str, ...]) -> str:
    words: list[str] = []
    for code in topics:
        category = _config().category(code)
        for word in category.keywords if category else ():
            if word.isascii() == (lang.written == "en") and word not in words:
                words.append(word)
    return ",".join(words[:60])


# --- incoming call, language menu, main menu -------------------------------------------------


@bp.post("/incoming")
def incoming() -> Response:
    if not request.form.get("CallSid"):
        abort(400, description="CallSid is required")
    call = filing.ensure_call(_sessions(), request.form, _config(), greet=True)
    if not call.greeted:
        filing.record_step(_sessions(), call.id, "greeted", greeted=True)
    script = _script(call)
    if call.language:
        name = (call.meta or {}).get("resident_name")
        if name:
            script.say("voice_greeting_known", name=name)
        else:
            script.say("voice_greeting")
        _main_menu(script, 1)
        return script.http()
    script.say("voice_greeting")
    _language_menu(script, 1)
    return script.http()


def _language_menu(script: Script, attempt: int) -> None:
    gather = script.gather("/voice/language", num_digits=1)
    for digit, lang in enumerate(menu_languages(script.config), start=1):
        script.say("voice_language_option", gather, lang=lang, digit=digit)
    if attempt < int(_voice_setting("menu_retries", 3)):
        script.say("voice_no_input")
        script.redirect("/voice/language-menu", n=attempt + 1)
    else:
        script.redirect("/voice/menu", n=1)


@bp.post("/language-menu")
def language_menu() -> Response:
    call = _call()
    script = _script(call)
    _language_menu(script, _int_arg("n", 1))
    return script.http()


@bp.post("/language")
def choose_language() -> Response:
    call = _call()
    choices = menu_languages(_config())
    digits = _param("Digits", MAX_DIGITS)
    if not (digits.isdigit() and 1 <= int(digits) <= len(choices)):
        script = _script(call)
        script.say("voice_invalid_choice")
        _language_menu(script, 1)
        return script.http()
    chosen = choices[int(digits) - 1]
    filing.record_step(_sessions(), call.id, f"language:{chosen.key}", language=chosen.key)
    if call.resident_id is not None:
        with _sessions()() as session:
            resident = session.get(Resident, call.resident_id)
            if resident is not None:
                resident.spoken_language = chosen.key
                resident.language = resident.language or chosen.written
                session.commit()
    call.language = chosen.key
    script = _script(call)
    _main_menu(script, 1)
    return script.http()


def _main_menu(script: Script, attempt: int) -> None:
    gather = script.gather(
        "/voice/menu/choice",
        input="dtmf speech",
        num_digits=1,
        hints=_hints(script.lang, ("repair", "complaint", "emergency", "billing")),
        n=attempt,
    )
    script.say("voice_main_menu", gather)
    if attempt < int(_voice_setting("menu_retries", 3)):
        script.say("voice_no_input")
        script.redirect("/voice/menu", n=attempt + 1)
    else:
        script.redirect("/voice/operator")


@bp.post("/menu")
def menu() -> Response:
    call = _call()
    script = _script(call)
    _main_menu(script, _int_arg("n", 1))
    return script.http()


def _speech_intent(text: str) -> str | None:
    intents: dict[str, list[str]] = _voice_setting("speech_intents", {}) or {}
    lowered = text.lower()
    for intent, words in intents.items():
        if any(str(w).lower() in lowered for w in words):
            return intent
    return None


@bp.post("/menu/choice")
def menu_choice() -> Response:
    call = _call()
    digits = _param("Digits", MAX_DIGITS)
    speech = _param("SpeechResult", filing.MAX_SPEECH_CHARS).strip()
    topic = MENU.get(digits) if digits else None
    if topic is None and not digits and speech:
        result = classify(
            speech, _config(), language_hint=language(_config(), call.language).written
        )
        intent = _speech_intent(speech)
        if result.category == "emergency":
            filing.record_step(_sessions(), call.id, "menu:speech:emergency")
            return _emergency(call, speech)
        if intent in ("progress", "operator"):
            topic = intent
        else:
            topic = result.category if result.category in DESCRIBED_TOPICS else "inquiry"
            filing.record_step(_sessions(), call.id, f"menu:speech:{topic}")
            return _file_and_offer_recording(call, speech, topic)
    if topic is None:
        script = _script(call)
        script.say("voice_invalid_choice")
        _main_menu(script, _int_arg("n", 1))
        return script.http()
    filing.record_step(
        _sessions(), call.id, f"menu:{topic}", meta={**(call.meta or {}), "topic": topic}
    )
    if topic == "emergency":
        return _emergency(call, "")
    if topic == "operator":
        return _operator(call)
    if topic == "progress":
        return _progress_prompt(call)
    script = _script(call)
    _describe(script, topic)
    return script.http()


# --- repair, complaint, other: description, recording ----------------------------------------


def _describe(script: Script, topic: str) -> None:
    gather = script.gather(
        "/voice/describe/done", input="speech", hints=_hints(script.lang, (topic,)), topic=topic
    )
    script.say("voice_describe_prompt", gather, topic=topic)
    script.redirect("/voice/record", topic=topic)


def _record(script: Script, topic: str, call: Call | None = None) -> None:
    """A <Record>; an unfiled call remembers it, so a hang-up mid-message files the right ticket."""
    if call is not None and call.ticket_id is None:
        filing.record_step(_sessions(), call.id, f"record:{topic}")
    script.response.record(
        action=script.url("/voice/recorded", topic=topic),
        method="POST",
        max_length=int(_voice_setting("record_max_seconds", 120)),
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=script.url("/voice/recording"),
        recording_status_callback_method="POST",
    )
    script.redirect("/voice/record/none", topic=topic)


def _topic() -> str:
    topic = request.args.get("topic", "inquiry")
    return topic if topic in filing.TOPIC_CATEGORIES else "inquiry"


@bp.post("/describe/done")
def describe_done() -> Response:
    call = _call()
    topic = _topic()
    speech = _param("SpeechResult", filing.MAX_SPEECH_CHARS).strip()
    if not speech:
        script = _script(call)
        script.say("voice_record_prompt", topic=topic)
        _record(script, topic, call)
        return script.http()
    return _file_and_offer_recording(call, speech, topic)


def _file_and_offer_recording(call: Call, text: str, topic: str) -> Response:
    receipt = filing.file_ticket(_sessions(), call, _config(), text=text, topic=topic, now=_now())
    script = _script(call)
    script.say(
        "voice_filed",
        category=_category_name(receipt.ticket_id, script.lang),
        ref_spoken=spoken_ref(receipt.ticket_ref, script.lang.key),
    )
    script.say("voice_record_more")
    _record(script, topic)
    return script.http()


@bp.post("/record")
def record() -> Response:
    call = _call()
    topic = _topic()
    script = _script(call)
    script.say("voice_record_prompt", topic=topic)
    _record(script, topic, call)
    return script.http()


def _ensure_ticket(call: Call, topic: str, text_phrase: str) -> tuple[int, str]:
    if call.ticket_id is not None:
        ref = _ticket_ref(call.ticket_id)
        assert ref is not None
        return call.ticket_id, ref
    lang = language(_config(), call.language)
    text = Script(_config(), lang, "").text(text_phrase, topic=topic)
    receipt = filing.file_ticket(
        _sessions(),
        call,
        _config(),
        text=text,
        topic=topic,
        kind="voicemail" if topic in VOICEMAIL_CALLBACKS else "call",
        now=_now(),
    )
    return receipt.ticket_id, receipt.ticket_ref


def _finish_recording(call: Call, topic: str, recorded: bool) -> Response:
    was_filed = call.ticket_id is not None
    _, ref = _ensure_ticket(
        call, topic, "voice_recording_text" if recorded else "voice_no_description"
    )
    if topic in VOICEMAIL_CALLBACKS:
        filing.owe_callback(_sessions(), call, _config(), VOICEMAIL_CALLBACKS[topic], now=_now())
    script = _script(call)
    if was_filed and recorded:
        script.say("voice_recording_saved")
    else:
        script.say("voice_voicemail_saved", ref_spoken=spoken_ref(ref, script.lang.key))
    script.say("voice_goodbye")
    script.hangup()
    return script.http()


@bp.post("/record/none")
def record_none() -> Response:
    """Twilio skips the Record action on an empty recording and comes here: keep the ticket anyway."""
    call = _call()
    return _finish_recording(call, _topic(), recorded=False)


@bp.post("/recorded")
def recorded() -> Response:
    call = _call()
    topic = _topic()
    sid = _param("RecordingSid", 64)
    if not sid:
        return _finish_recording(call, topic, recorded=False)
    _ensure_ticket(call, topic, "voice_recording_text")
    _attach(call, sid)
    return _finish_recording(call, topic, recorded=True)


def _attach(call: Call, sid: str) -> None:
    duration = _param("RecordingDuration", 10)
    filing.attach_recording(
        _sessions(),
        call,
        _config(),
        recording_sid=sid,
        recording_url=_param("RecordingUrl", 500) or None,
        duration=int(duration) if duration.isdigit() else None,
        fetch=bool(_settings().twilio_account_sid),
    )


@bp.post("/recording")
def recording_status() -> Response:
    """Twilio's recording status callback: attach the audio even when the action never came."""
    sid = _param("RecordingSid", 64)
    call_sid = _param("CallSid", 64)
    if not sid or not call_sid or _param("RecordingStatus", 20) not in ("", "completed"):
        return empty()
    with _sessions()() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        return empty()
    if call.ticket_id is None:
        topic = str((call.meta or {}).get("topic") or "voicemail")
        _ensure_ticket(
            call, topic if topic in filing.TOPIC_CATEGORIES else "voicemail", "voice_recording_text"
        )
    _attach(call, sid)
    return empty()


# --- emergency --------------------------------------------------------------------------------


def _on_call_numbers() -> list[str]:
    numbers: list[str] = []
    for code in _voice_setting("emergency_departments", ["engineering", "security"]):
        dept = _config().department(code)
        numbers.extend(n for n in (dept.on_call if dept else ()) if n not in numbers)
    return numbers


def _emergency(call: Call, speech: str) -> Response:
    lang = language(_config(), call.language)
    text = speech or Script(_config(), lang, "").text("voice_emergency_text")
    receipt = filing.file_ticket(
        _sessions(), call, _config(), text=text, topic="emergency", priority_hint="P1", now=_now()
    )
    script = _script(call)
    script.say("voice_emergency_connecting", ref_spoken=spoken_ref(receipt.ticket_ref, lang.key))
    _dial_on_call(script, call, 0)
    return script.http()


def _dial_on_call(script: Script, call: Call, index: int) -> None:
    numbers = _on_call_numbers()
    if index >= len(numbers):
        _page_and_voicemail(script, call)
        return
    attrs: dict[str, Any] = {
        "action": script.url("/voice/emergency/dialed", i=index),
        "method": "POST",
        "timeout": int(_voice_setting("dial_timeout_seconds", 20)),
    }
    if _settings().twilio_number:
        attrs["caller_id"] = _settings().twilio_number
    dial = Dial(**attrs)
    dial.number(numbers[index])
    script.response.append(dial)


def _page_and_voicemail(script: Script, call: Call) -> None:
    if call.ticket_id is not None:
        with _sessions()() as session:
            ticket = session.get(Ticket, call.ticket_id)
            if ticket is not None and not ticket.needs_paging:
                ticket.needs_paging = True
                record_event(
                    session, ticket, "on_call_unanswered", "nobody on call answered; page them"
                )
                session.commit()
    script.say("voice_emergency_no_answer")
    _record(script, "emergency")


@bp.post("/emergency/dialed")
def emergency_dialed() -> Response:
    call = _call()
    index = _int_arg("i", 0)
    status = _param("DialCallStatus", 20)
    script = _script(call)
    if status in ("completed", "answered"):
        filing.record_step(_sessions(), call.id, f"on_call_answered:{index}")
        numbers = _on_call_numbers()
        number = numbers[index] if index < len(numbers) else None
        if call.ticket_id is not None:
            with _sessions()() as session:
                ticket = session.get(Ticket, call.ticket_id)
                if ticket is not None:
                    record_event(
                        session,
                        ticket,
                        "on_call_answered",
                        f"on-call number {index + 1} ({number or 'unknown'}) answered the caller",
                        number=number,
                    )
                    on_call_answered(
                        session, ticket.id, number, how="answered the caller's emergency call"
                    )
                    session.commit()
        script.say("voice_goodbye")
        script.hangup()
        return script.http()
    filing.record_step(_sessions(), call.id, f"on_call_{status or 'unknown'}:{index}")
    if index + 1 < len(_on_call_numbers()):
        script.say("voice_emergency_trying_next")
    _dial_on_call(script, call, index + 1)
    return script.http()


# --- operator, queue, virtual hold ------------------------------------------------------------


def _queue_name() -> str:
    return str(_voice_setting("operator_queue", "operators"))


def _enqueue(script: Script, wait_query: dict[str, Any]) -> None:
    enqueue = Enqueue(
        name=_queue_name(),
        action=script.url("/voice/queue/left"),
        method="POST",
        wait_url=script.url("/voice/queue/wait", **wait_query),
        wait_url_method="POST",
    )
    script.response.append(enqueue)


def _voicemail(
    script: Script, prompt: str, topic: str, call: Call | None = None, **context: Any
) -> None:
    script.say(prompt, **context)
    _record(script, topic, call)


def _operator(call: Call) -> Response:
    config = _config()
    script = _script(call)
    now = _now()
    if is_open(now, config):
        filing.record_step(
            _sessions(), call.id, "queue", queue_entered_at=call.queue_entered_at or now
        )
        script.say("voice_operator_connecting")
        _enqueue(script, {})
        return script.http()
    filing.record_step(
        _sessions(), call.id, "after_hours", meta={**(call.meta or {}), "topic": "after_hours"}
    )
    _voicemail(
        script,
        "voice_after_hours",
        "after_hours",
        call,
        hours=describe_hours(config, script.lang.written),
    )
    return script.http()


@bp.post("/operator")
def operator() -> Response:
    return _operator(_call())


@bp.post("/queue/wait")
def queue_wait() -> Response:
    call = _call()
    script = _script(call)
    if request.args.get("callback"):
        script.say("voice_queue_hold_on")
        script.response.pause(length=10)
        return script.http()
    position = _param("QueuePosition", 6)
    gather = script.gather("/voice/queue/hold", num_digits=1, timeout=8)
    script.say("voice_queue_position", gather, position=int(position) if position.isdigit() else 1)
    script.response.pause(length=5)
    return script.http()


@bp.post("/queue/hold")
def queue_hold() -> Response:
    """Virtual hold: the caller leaves the queue and is called back in the order they joined it."""
    call = _call()
    script = _script(call)
    if _param("Digits", MAX_DIGITS) != "1":
        script.redirect("/voice/queue/wait")
        return script.http()
    _, ref = _ensure_ticket(call, "operator", "voice_virtual_hold_text")
    filing.record_step(_sessions(), call.id, "virtual_hold")
    filing.owe_callback(
        _sessions(),
        call,
        _config(),
        "virtual_hold",
        queued_at=call.queue_entered_at or _now(),
        now=_now(),
    )
    script.say("voice_virtual_hold_confirmed", ref_spoken=spoken_ref(ref, script.lang.key))
    script.response.leave()
    return script.http()


@bp.post("/queue/left")
def queue_left() -> Response:
    call = _call()
    result = _param("QueueResult", 30)
    script = _script(call)
    if result == "bridged":
        filing.record_step(_sessions(), call.id, "bridged")
        script.hangup()
    elif result in ("leave", "redirected") and call.ticket_id is not None:
        script.say("voice_goodbye")
        script.hangup()
    elif result == "hangup":
        script.hangup()
    else:
        filing.record_step(_sessions(), call.id, f"queue:{result or 'unknown'}")
        _voicemail(script, "voice_queue_unavailable", "voicemail", call)
    return script.http()


# --- progress of an existing ticket -----------------------------------------------------------


def _progress_prompt(call: Call) -> Response:
    script = _script(call)
    gather = script.gather("/voice/progress/lookup", timeout=10, finish_on_key="#")
    script.say("voice_progress_prompt", gather)
    script.redirect("/voice/menu", n=2)
    return script.http()


@bp.post("/progress")
def progress() -> Response:
    return _progress_prompt(_call())


@bp.post("/progress/lookup")
def progress_lookup() -> Response:
    call = _call()
    digits = _param("Digits", 40)
    script = _script(call)
    ticket_ref = (
        format_ref(_config().ticket_prefix, int(digits))
        if digits.isdigit() and len(digits) <= 9 and int(digits) > 0
        else None
    )
    with _sessions()() as session:
        ticket = (
            session.scalar(select(Ticket).where(Ticket.ref == ticket_ref)) if ticket_ref else None
        )
        if ticket is None:
            script.say("voice_progress_not_found")
        elif not is_participant(session, ticket, call.from_number, None):
            script.say("voice_progress_not_yours")
        else:
            status = script.text("voice_status_name", status=ticket.status)
            script.say(
                "voice_progress_status",
                ref_spoken=spoken_ref(ticket.ref or "", script.lang.key),
                status=status,
            )
            record_event(
                session, ticket, "progress_enquiry", f"status read to {call.from_number} by phone"
            )
            session.commit()
            filing.record_step(_sessions(), call.id, f"progress:{ticket.ref}", filed=True)
    _main_menu(script, 2)
    return script.http()


# --- fallback ---------------------------------------------------------------------------------


@bp.post("/fallback")
def fallback() -> Response:
    """The number's fallback URL: apologise and take a voicemail so nothing said is lost."""
    if not request.form.get("CallSid"):
        script = Script(_config(), language(_config(), None), _settings().public_base_url)
        script.say("voice_fallback")
        script.hangup()
        return script.http()
    call = _call()
    filing.record_step(_sessions(), call.id, f"fallback:{_param('ErrorCode', 10)}", greeted=True)
    script = _script(call)
    _voicemail(script, "voice_fallback", "voicemail", call)
    return script.http()


# --- status callbacks -------------------------------------------------------------------------


def _sequence(status: str) -> int:
    raw = _param("SequenceNumber", 9)
    return int(raw) if raw.isdigit() else 1000 + STATUS_RANK.get(status, 4)


def _abandoned(call: Call) -> bool:
    return (
        call.direction == "inbound"
        and call.greeted
        and not call.filed
        and call.ticket_id is None
        and "bridged" not in call.ivr_path
    )


def _file_abandoned(call: Call) -> None:
    """A hang-up before anything was filed: mid-message, the message's ticket; else a missed call."""
    last = str(call.ivr_path[-1]) if call.ivr_path else ""
    topic = last.partition(":")[2] if last.startswith("record:") else None
    if topic not in filing.TOPIC_CATEGORIES:
        filing.file_missed_call(_sessions(), call, _config(), _now())
        return
    assert topic is not None
    _ensure_ticket(call, topic, "voice_hung_up_recording")
    if topic in VOICEMAIL_CALLBACKS:
        filing.owe_callback(_sessions(), call, _config(), VOICEMAIL_CALLBACKS[topic], now=_now())


@bp.post("/status")
def status() -> Response:
    call_sid = _param("CallSid", 64)
    status_value = _param("CallStatus", 20)
    if not call_sid or not status_value:
        abort(400, description="CallSid and CallStatus are required")
    sequence = _sequence(status_value)
    sessions = _sessions()
    with sessions() as session:
        seen = session.scalar(
            select(CallStatusEvent.id).where(
                CallStatusEvent.call_sid == call_sid, CallStatusEvent.sequence_number == sequence
            )
        )
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if seen is not None:
        return empty()
    ends_now = call is not None and status_value in TERMINAL and call.status not in TERMINAL
    if ends_now and call is not None and _abandoned(call):
        _file_abandoned(call)
    with sessions() as session:
        try:
            # The event first: a duplicate posted at the same moment fails here (unique call_sid
            # and sequence) and is answered 200 quietly; the first one applies the status.
            session.add(
                CallStatusEvent(
                    call_sid=call_sid,
                    sequence_number=sequence,
                    status=status_value,
                    params={k: v[:500] for k, v in request.form.items()},
                    received_at=utcnow(),
                )
            )
            session.flush()
            if call is not None:
                row = session.scalar(select(Call).where(Call.id == call.id).with_for_update())
                assert row is not None
                _apply_status(session, row, status_value, sequence)
            session.commit()
        except IntegrityError:
            session.rollback()
            log.info("status %s (%s) of %s already recorded", status_value, sequence, call_sid)
    return empty()


def _apply_status(session: Session, call: Call, status_value: str, sequence: int) -> None:
    """Monotonic: a terminal status is final, and a late `ringing` never moves a call backwards."""
    if call.status in TERMINAL:
        return
    new_rank = 4 if status_value in TERMINAL else STATUS_RANK.get(status_value, 0)
    if new_rank < STATUS_RANK.get(call.status, 0):
        return
    call.status = status_value
    call.status_sequence = max(call.status_sequence, sequence)
    answered_by = _param("AnsweredBy", 30)
    if answered_by:
        call.answered_by = answered_by
    if status_value not in TERMINAL:
        return
    call.ended_at = utcnow()
    duration = _param("CallDuration", 9)
    if duration.isdigit():
        call.duration_seconds = int(duration)
    attempt = session.scalar(
        select(CallbackAttempt).where(CallbackAttempt.call_sid == call.call_sid)
    )
    if attempt is not None:
        enqueue_after_commit(
            session,
            "callback_call_ended",
            dedupe_key=f"callend:{call.call_sid}",
            attempt_id=attempt.id,
            call_status=status_value,
            answered_by=call.answered_by,
        )


# --- outbound callback calls ------------------------------------------------------------------


def _attempt_context() -> tuple[CallbackAttempt, Callback, Ticket, VoiceLanguage] | None:
    attempt_id = _int_arg("attempt", 0)
    with _sessions()() as session:
        attempt = session.get(CallbackAttempt, attempt_id) if attempt_id else None
        if attempt is None:
            return None
        callback = attempt.callback
        ticket = callback.ticket
        resident = ticket.resident
        lang = resident_language(_config(), resident) if resident is not None else None
        if lang is None:
            lang = language(_config(), ticket.language)
        return attempt, callback, ticket, lang


def _outbound_script(lang: VoiceLanguage) -> Script:
    return Script(_config(), lang, _settings().public_base_url)


@bp.post("/outbound")
def outbound() -> Response:
    """TwiML for a call the worker's dialer placed: named after the ticket, served by purpose."""
    call = _call()
    found = _attempt_context()
    if found is None:
        script = _script(call)
        script.hangup()
        return script.http()
    attempt, callback, ticket, lang = found
    answered_by = _param("AnsweredBy", 30)
    filing.record_step(
        _sessions(),
        call.id,
        f"outbound:{callback.purpose}",
        language=lang.key,
        answered_by=answered_by or call.answered_by,
        callback_id=callback.id,
    )
    script = _outbound_script(lang)
    ref_spoken = spoken_ref(ticket.ref or "", lang.key)
    if answered_by.startswith(("machine", "fax")):
        script.say("voice_machine_message", ref_spoken=ref_spoken)
        script.hangup()
        return script.http()
    again = request.args.get("again") == "1"
    if not again:
        script.say("voice_callback_opening", ref_spoken=ref_spoken)
    if callback.purpose in ("follow_up", "survey"):
        path = (
            "/voice/outbound/follow-up"
            if callback.purpose == "follow_up"
            else "/voice/outbound/survey"
        )
        question = (
            "voice_follow_up_question"
            if callback.purpose == "follow_up"
            else "voice_survey_question"
        )
        gather = script.gather(path, num_digits=1, timeout=8, attempt=attempt.id)
        script.say(question, gather)
        if not again:
            script.redirect("/voice/outbound", attempt=attempt.id, again=1)
        else:
            script.say("voice_goodbye")
            script.hangup()
        return script.http()
    script.say("voice_callback_connecting")
    _enqueue(script, {"callback": 1})
    return script.http()


def _ask_survey(script: Script, attempt: CallbackAttempt) -> None:
    """The satisfaction question (1–5 by key or by speech: "五分", "five"), asked twice at most."""
    gather = script.gather(
        "/voice/outbound/survey",
        input="dtmf speech",
        num_digits=1,
        timeout=8,
        attempt=attempt.id,
    )
    script.say("voice_survey_question", gather)
    script.say("voice_goodbye")
    script.hangup()


@bp.post("/outbound/follow-up")
def outbound_follow_up() -> Response:
    """ "Is it fixed?" — 1 fixed (then the survey where configured), 2 not fixed (reopened to
    the same department, told at once); the lifecycle takes one answer per follow-up."""
    _call()
    found = _attempt_context()
    if found is None:
        abort(404, description="no such callback attempt")
    attempt, callback, _ticket, lang = found
    digits = _param("Digits", MAX_DIGITS)
    script = _outbound_script(lang)
    if digits not in ("1", "2"):
        script.say("voice_invalid_choice")
        script.redirect("/voice/outbound", attempt=attempt.id, again=1)
        return script.http()
    answer = "fixed" if digits == "1" else "not_fixed"
    with _sessions()() as session:
        answered = session.get(Callback, callback.id)
        assert answered is not None
        lifecycle.answer_follow_up(
            session,
            answered,
            answer,
            actor=f"resident by phone ({answered.phone})",
            config=_config(),
            now=_now(),
        )
        session.commit()
    if answer == "fixed" and lifecycle.survey_wanted(_config()):
        _ask_survey(script, attempt)
        return script.http()
    script.say("voice_follow_up_fixed" if answer == "fixed" else "voice_follow_up_not_fixed")
    script.hangup()
    return script.http()


@bp.post("/outbound/survey")
def outbound_survey() -> Response:
    _call()
    found = _attempt_context()
    if found is None:
        abort(404, description="no such callback attempt")
    attempt, callback, _ticket, lang = found
    score = lifecycle.survey_score(
        _param("Digits", MAX_DIGITS) or _param("SpeechResult", filing.MAX_SPEECH_CHARS)
    )
    script = _outbound_script(lang)
    if score is None:
        script.say("voice_invalid_choice")
        _ask_survey(script, attempt)
        return script.http()
    with _sessions()() as session:
        answered = session.get(Callback, callback.id)
        assert answered is not None
        lifecycle.answer_survey(
            session, answered, score, actor=f"resident by phone ({answered.phone})", now=_now()
        )
        if answered.status != "done":
            answered.status, answered.outcome = "done", answered.outcome or "reached"
        session.commit()
    script.say("voice_survey_thanks")
    script.hangup()
    return script.http()


__all__ = ["bp", "xml_response"]
