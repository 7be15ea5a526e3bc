"""TwiML several flows end with: the main menu, a recorded message or voicemail, the operator queue."""

from __future__ import annotations

from typing import Any

from twilio.twiml.voice_response import Enqueue

from intake.models import Call
from voice import filing
from voice.ivr.base import app_config, db_sessions, hints
from voice.twiml import Script


def main_menu(script: Script, attempt: int, *, offer_buildings: bool = False) -> None:
    """The main menu (keys or speech), asked again up to `voice.menu_retries`, then an operator;
    with `offer_buildings`, 8 hears a building's incident (a caller whose home we do not know)."""
    gather = script.gather(
        "/voice/menu/choice",
        input="dtmf speech",
        num_digits=1,
        hints=hints(script.lang, ("repair", "complaint", "emergency", "billing")),
        n=attempt,
    )
    script.say("voice_main_menu", gather)
    if offer_buildings:
        script.say("incident_menu_offer", gather)
    if attempt < app_config().voice.menu_retries:
        script.say("voice_no_input")
        script.redirect("/voice/menu", n=attempt + 1)
    else:
        script.redirect("/voice/operator")


def record_message(script: Script, topic: str, call: Call | None = None) -> None:
    """A <Record>; an unfiled call remembers it, so a hang-up mid-message files the right ticket."""
    if call is not None and call.ticket_id is None:
        filing.record_step(db_sessions(), call.id, f"record:{topic}")
    script.response.record(
        action=script.url("/voice/recorded", topic=topic),
        method="POST",
        max_length=app_config().voice.record_max_seconds,
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=script.url("/voice/recording"),
        recording_status_callback_method="POST",
    )
    script.redirect("/voice/record/none", topic=topic)


def queue_name() -> str:
    """The Twilio queue operators answer (`voice.operator_queue`)."""
    return app_config().voice.operator_queue


def enqueue(script: Script, wait_query: dict[str, Any]) -> None:
    """Into the operators' queue, its hold loop at /voice/queue/wait (with `wait_query`)."""
    into_queue = Enqueue(
        name=queue_name(),
        action=script.url("/voice/queue/left"),
        method="POST",
        wait_url=script.url("/voice/queue/wait", **wait_query),
        wait_url_method="POST",
    )
    script.response.append(into_queue)


def voicemail(
    script: Script, prompt: str, topic: str, call: Call | None = None, **context: Any
) -> None:
    """Say `prompt`, then record a message filed under `topic`."""
    script.say(prompt, **context)
    record_message(script, topic, call)
