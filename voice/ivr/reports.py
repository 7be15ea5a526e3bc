"""Repairs, complaints and inquiries by phone: the spoken description, the recording, the ticket.

Also the number's fallback URL, which takes a voicemail so nothing said is lost.
"""

from __future__ import annotations

from flask import Response, request
from sqlalchemy import select

from intake.models import Call, utcnow
from intake.phrases import spoken_ref
from voice import filing
from voice.ivr.base import (
    app_config,
    app_settings,
    bp,
    category_name,
    current_call,
    db_sessions,
    hints,
    param,
    script_for,
    ticket_ref,
)
from voice.ivr.prompts import record_message, voicemail
from voice.languages import language
from voice.twiml import Script, empty


def describe(script: Script, topic: str) -> None:
    gather = script.gather(
        "/voice/describe/done", input="speech", hints=hints(script.lang, (topic,)), topic=topic
    )
    script.say("voice_describe_prompt", gather, topic=topic)
    script.redirect("/voice/record", topic=topic)


def _topic() -> str:
    topic = request.args.get("topic", "inquiry")
    return topic if topic in filing.TOPIC_CATEGORIES else "inquiry"


@bp.post("/describe/done")
def describe_done() -> Response:
    call = current_call()
    topic = _topic()
    speech = param("SpeechResult", filing.MAX_SPEECH_CHARS).strip()
    if not speech:
        script = script_for(call)
        script.say("voice_record_prompt", topic=topic)
        record_message(script, topic, call)
        return script.http()
    return file_and_offer_recording(call, speech, topic)


def file_and_offer_recording(call: Call, text: str, topic: str) -> Response:
    receipt = filing.file_ticket(
        db_sessions(), call, app_config(), text=text, topic=topic, now=utcnow()
    )
    script = script_for(call)
    script.say(
        "voice_filed",
        category=category_name(receipt.ticket_id, script.lang),
        ref_spoken=spoken_ref(receipt.ticket_ref, script.lang.key),
    )
    script.say("voice_record_more")
    record_message(script, topic)
    return script.http()


@bp.post("/record")
def record() -> Response:
    call = current_call()
    topic = _topic()
    script = script_for(call)
    script.say("voice_record_prompt", topic=topic)
    record_message(script, topic, call)
    return script.http()


def ensure_ticket(call: Call, topic: str, text_phrase: str) -> tuple[int, str]:
    if call.ticket_id is not None:
        ref = ticket_ref(call.ticket_id)
        assert ref is not None
        return call.ticket_id, ref
    lang = language(app_config(), call.language)
    text = Script(app_config(), lang, "").text(text_phrase, topic=topic)
    receipt = filing.file_ticket(
        db_sessions(),
        call,
        app_config(),
        text=text,
        topic=topic,
        kind="voicemail" if topic in filing.VOICEMAIL_CALLBACKS else "call",
        now=utcnow(),
    )
    return receipt.ticket_id, receipt.ticket_ref


def _finish_recording(call: Call, topic: str, recorded: bool) -> Response:
    was_filed = call.ticket_id is not None
    _, ref = ensure_ticket(
        call, topic, "voice_recording_text" if recorded else "voice_no_description"
    )
    if topic in filing.VOICEMAIL_CALLBACKS:
        filing.owe_callback(
            db_sessions(), call, app_config(), filing.VOICEMAIL_CALLBACKS[topic], now=utcnow()
        )
    script = script_for(call)
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
    call = current_call()
    return _finish_recording(call, _topic(), recorded=False)


@bp.post("/recorded")
def recorded() -> Response:
    call = current_call()
    topic = _topic()
    sid = param("RecordingSid", 64)
    if not sid:
        return _finish_recording(call, topic, recorded=False)
    ensure_ticket(call, topic, "voice_recording_text")
    _attach(call, sid)
    return _finish_recording(call, topic, recorded=True)


def _attach(call: Call, sid: str) -> None:
    duration = param("RecordingDuration", 10)
    filing.attach_recording(
        db_sessions(),
        call,
        app_config(),
        recording_sid=sid,
        recording_url=param("RecordingUrl", 500) or None,
        duration=int(duration) if duration.isdigit() else None,
        fetch=bool(app_settings().twilio_account_sid),
    )


@bp.post("/recording")
def recording_status() -> Response:
    """Twilio's recording status callback: attach the audio even when the action never came."""
    sid = param("RecordingSid", 64)
    call_sid = param("CallSid", 64)
    if not sid or not call_sid or param("RecordingStatus", 20) not in ("", "completed"):
        return empty()
    with db_sessions()() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        return empty()
    if call.ticket_id is None:
        topic = str((call.meta or {}).get("topic") or "voicemail")
        ensure_ticket(
            call, topic if topic in filing.TOPIC_CATEGORIES else "voicemail", "voice_recording_text"
        )
    _attach(call, sid)
    return empty()


@bp.post("/fallback")
def fallback() -> Response:
    """The number's fallback URL: apologise and take a voicemail so nothing said is lost."""
    if not request.form.get("CallSid"):
        script = Script(app_config(), language(app_config(), None), app_settings().public_base_url)
        script.say("voice_fallback")
        script.hangup()
        return script.http()
    call = current_call()
    filing.record_step(db_sessions(), call.id, f"fallback:{param('ErrorCode', 10)}", greeted=True)
    script = script_for(call)
    voicemail(script, "voice_fallback", "voicemail", call)
    return script.http()
