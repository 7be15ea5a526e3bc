"""Emergencies: a P1 ticket at once, the on-call numbers dialled in turn, then paging and voicemail."""

from __future__ import annotations

from typing import Any

from flask import Response
from twilio.twiml.voice_response import Dial

from intake.models import Call, Ticket, utcnow
from intake.paging import on_call_answered
from intake.phrases import spoken_ref
from intake.tickets import record_event
from voice import filing
from voice.ivr.base import (
    app_config,
    app_settings,
    bp,
    current_call,
    db_sessions,
    int_arg,
    param,
    script_for,
)
from voice.ivr.prompts import record_message
from voice.languages import language
from voice.twiml import Script


def _on_call_numbers() -> list[str]:
    numbers: list[str] = []
    for code in app_config().voice.emergency_departments:
        dept = app_config().department(code)
        numbers.extend(n for n in (dept.on_call if dept else ()) if n not in numbers)
    return numbers


def emergency(call: Call, speech: str) -> Response:
    lang = language(app_config(), call.language)
    text = speech or Script(app_config(), lang, "").text("voice_emergency_text")
    receipt = filing.file_ticket(
        db_sessions(),
        call,
        app_config(),
        text=text,
        topic="emergency",
        priority_hint="P1",
        now=utcnow(),
    )
    script = script_for(call)
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
        "timeout": app_config().voice.dial_timeout_seconds,
    }
    if app_settings().twilio_number:
        attrs["caller_id"] = app_settings().twilio_number
    dial = Dial(**attrs)
    dial.number(numbers[index])
    script.response.append(dial)


def _page_and_voicemail(script: Script, call: Call) -> None:
    if call.ticket_id is not None:
        with db_sessions()() as session:
            ticket = session.get(Ticket, call.ticket_id)
            if ticket is not None and not ticket.needs_paging:
                ticket.needs_paging = True
                record_event(
                    session, ticket, "on_call_unanswered", "nobody on call answered; page them"
                )
                session.commit()
    script.say("voice_emergency_no_answer")
    record_message(script, "emergency")


@bp.post("/emergency/dialed")
def emergency_dialed() -> Response:
    call = current_call()
    index = int_arg("i", 0)
    status = param("DialCallStatus", 20)
    script = script_for(call)
    if status in ("completed", "answered"):
        filing.record_step(db_sessions(), call.id, f"on_call_answered:{index}")
        numbers = _on_call_numbers()
        number = numbers[index] if index < len(numbers) else None
        if call.ticket_id is not None:
            with db_sessions()() as session:
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
    filing.record_step(db_sessions(), call.id, f"on_call_{status or 'unknown'}:{index}")
    if index + 1 < len(_on_call_numbers()):
        script.say("voice_emergency_trying_next")
    _dial_on_call(script, call, index + 1)
    return script.http()
