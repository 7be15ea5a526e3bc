"""Calls the worker's dialer placed: a callback to the queue, the follow-up question
("is it fixed?") and the satisfaction survey. Every answer changes the ticket through
`intake.lifecycle`."""

from __future__ import annotations

from flask import Response, abort, request

from intake import lifecycle
from intake.models import Callback, CallbackAttempt, Ticket, utcnow
from intake.phrases import spoken_ref
from voice import filing
from voice.ivr.base import (
    MAX_DIGITS,
    app_config,
    app_settings,
    bp,
    current_call,
    db_sessions,
    int_arg,
    param,
    script_for,
)
from voice.ivr.prompts import enqueue
from voice.ivr.queue import desk_enter
from voice.languages import VoiceLanguage, language, resident_language
from voice.twiml import Script


def _attempt_context() -> tuple[CallbackAttempt, Callback, Ticket, VoiceLanguage] | None:
    attempt_id = int_arg("attempt", 0)
    with db_sessions()() as session:
        attempt = session.get(CallbackAttempt, attempt_id) if attempt_id else None
        if attempt is None:
            return None
        callback = attempt.callback
        ticket = callback.ticket
        resident = ticket.resident
        lang = resident_language(app_config(), resident) if resident is not None else None
        if lang is None:
            lang = language(app_config(), ticket.language)
        return attempt, callback, ticket, lang


def _outbound_script(lang: VoiceLanguage) -> Script:
    return Script(app_config(), lang, app_settings().public_base_url)


@bp.post("/outbound")
def outbound() -> Response:
    """TwiML for a call the worker's dialer placed: named after the ticket, served by purpose."""
    call = current_call()
    found = _attempt_context()
    if found is None:
        script = script_for(call)
        script.hangup()
        return script.http()
    attempt, callback, ticket, lang = found
    answered_by = param("AnsweredBy", 30)
    filing.record_step(
        db_sessions(),
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
    desk_enter(call)
    enqueue(script, {"callback": 1})
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
    current_call()
    found = _attempt_context()
    if found is None:
        abort(404, description="no such callback attempt")
    attempt, callback, _ticket, lang = found
    digits = param("Digits", MAX_DIGITS)
    script = _outbound_script(lang)
    if digits not in ("1", "2"):
        script.say("voice_invalid_choice")
        script.redirect("/voice/outbound", attempt=attempt.id, again=1)
        return script.http()
    answer = "fixed" if digits == "1" else "not_fixed"
    with db_sessions()() as session:
        answered = session.get(Callback, callback.id)
        assert answered is not None
        lifecycle.answer_follow_up(
            session,
            answered,
            answer,
            actor=f"resident by phone ({answered.phone})",
            config=app_config(),
            now=utcnow(),
        )
        session.commit()
    if answer == "fixed" and lifecycle.survey_wanted(app_config()):
        _ask_survey(script, attempt)
        return script.http()
    script.say("voice_follow_up_fixed" if answer == "fixed" else "voice_follow_up_not_fixed")
    script.hangup()
    return script.http()


@bp.post("/outbound/survey")
def outbound_survey() -> Response:
    current_call()
    found = _attempt_context()
    if found is None:
        abort(404, description="no such callback attempt")
    attempt, callback, _ticket, lang = found
    score = lifecycle.survey_score(
        param("Digits", MAX_DIGITS) or param("SpeechResult", filing.MAX_SPEECH_CHARS)
    )
    script = _outbound_script(lang)
    if score is None:
        script.say("voice_invalid_choice")
        _ask_survey(script, attempt)
        return script.http()
    with db_sessions()() as session:
        answered = session.get(Callback, callback.id)
        assert answered is not None
        lifecycle.answer_survey(
            session,
            answered,
            score,
            actor=f"resident by phone ({answered.phone})",
            now=utcnow(),
            on_the_call=True,
        )
        session.commit()
    script.say("voice_survey_thanks")
    script.hangup()
    return script.http()
