"""The start of a call: greeting, language menu, main menu (keys or speech) and where each choice goes."""

from __future__ import annotations

from flask import Response, abort, request

from intake.classify import classify
from intake.models import Resident
from voice import filing, incidents
from voice.ivr.base import (
    MAX_DIGITS,
    app_config,
    bp,
    current_call,
    db_sessions,
    int_arg,
    param,
    script_for,
)
from voice.ivr.emergency import emergency
from voice.ivr.progress import progress_prompt
from voice.ivr.prompts import main_menu
from voice.ivr.queue import operator_or_voicemail
from voice.ivr.reports import describe, file_and_offer_recording
from voice.languages import language, menu_languages
from voice.twiml import Script

MENU = {
    "1": "repair",
    "2": "complaint",
    "3": "inquiry",
    "4": "progress",
    "9": "emergency",
    "0": "operator",
}
DESCRIBED_TOPICS = ("repair", "complaint", "inquiry")


@bp.post("/incoming")
def incoming() -> Response:
    if not request.form.get("CallSid"):
        abort(400, description="CallSid is required")
    call = filing.ensure_call(db_sessions(), request.form, app_config(), greet=True)
    if not call.greeted:
        filing.record_step(db_sessions(), call.id, "greeted", greeted=True)
    announced = incidents.announcement(call)  # a building-wide incident over the caller's home
    if announced is not None:
        return announced
    script = script_for(call)
    if call.language:
        name = (call.meta or {}).get("resident_name")
        if name:
            script.say("voice_greeting_known", name=name)
        else:
            script.say("voice_greeting")
        main_menu(script, 1, offer_buildings=bool(incidents.offered_buildings(call)))
        return script.http()
    script.say("voice_greeting")
    _language_menu(script, 1)
    return script.http()


def _language_menu(script: Script, attempt: int) -> None:
    gather = script.gather("/voice/language", num_digits=1)
    for digit, lang in enumerate(menu_languages(script.config), start=1):
        script.say("voice_language_option", gather, lang=lang, digit=digit)
    if attempt < app_config().voice.menu_retries:
        script.say("voice_no_input")
        script.redirect("/voice/language-menu", n=attempt + 1)
    else:
        script.redirect("/voice/menu", n=1)


@bp.post("/language-menu")
def language_menu() -> Response:
    call = current_call()
    script = script_for(call)
    _language_menu(script, int_arg("n", 1))
    return script.http()


@bp.post("/language")
def choose_language() -> Response:
    call = current_call()
    choices = menu_languages(app_config())
    digits = param("Digits", MAX_DIGITS)
    if not (digits.isdigit() and 1 <= int(digits) <= len(choices)):
        script = script_for(call)
        script.say("voice_invalid_choice")
        _language_menu(script, 1)
        return script.http()
    chosen = choices[int(digits) - 1]
    filing.record_step(db_sessions(), call.id, f"language:{chosen.key}", language=chosen.key)
    if call.resident_id is not None:
        with db_sessions()() as session:
            resident = session.get(Resident, call.resident_id)
            if resident is not None:
                resident.spoken_language = chosen.key
                resident.language = resident.language or chosen.written
                session.commit()
    call.language = chosen.key
    announced = incidents.announcement(call)  # now that the caller's language is known
    if announced is not None:
        return announced
    script = script_for(call)
    main_menu(script, 1, offer_buildings=bool(incidents.offered_buildings(call)))
    return script.http()


@bp.post("/menu")
def menu() -> Response:
    call = current_call()
    script = script_for(call)
    main_menu(script, int_arg("n", 1), offer_buildings=bool(incidents.offered_buildings(call)))
    return script.http()


def _speech_intent(text: str) -> str | None:
    intents = app_config().voice.speech_intents
    lowered = text.lower()
    for intent, words in intents.items():
        if any(str(w).lower() in lowered for w in words):
            return intent
    return None


@bp.post("/menu/choice")
def menu_choice() -> Response:
    call = current_call()
    digits = param("Digits", MAX_DIGITS)
    speech = param("SpeechResult", filing.MAX_SPEECH_CHARS).strip()
    if digits == "8" and incidents.offered_buildings(call):
        script = script_for(call)
        script.redirect("/voice/incident/buildings")
        return script.http()
    topic = MENU.get(digits) if digits else None
    if topic is None and not digits and speech:
        result = classify(
            speech, app_config(), language_hint=language(app_config(), call.language).written
        )
        intent = _speech_intent(speech)
        if result.category == "emergency":
            filing.record_step(db_sessions(), call.id, "menu:speech:emergency")
            return emergency(call, speech)
        if intent in ("progress", "operator"):
            topic = intent
        else:
            topic = result.category if result.category in DESCRIBED_TOPICS else "inquiry"
            filing.record_step(db_sessions(), call.id, f"menu:speech:{topic}")
            return file_and_offer_recording(call, speech, topic)
    if topic is None:
        script = script_for(call)
        script.say("voice_invalid_choice")
        main_menu(script, int_arg("n", 1), offer_buildings=bool(incidents.offered_buildings(call)))
        return script.http()
    filing.record_step(
        db_sessions(), call.id, f"menu:{topic}", meta={**(call.meta or {}), "topic": topic}
    )
    if topic == "emergency":
        return emergency(call, "")
    if topic == "operator":
        return operator_or_voicemail(call)
    if topic == "progress":
        return progress_prompt(call)
    script = script_for(call)
    describe(script, topic)
    return script.http()
