"""Progress of an existing ticket: the caller keys its number and hears its status."""

from __future__ import annotations

from flask import Response
from sqlalchemy import select

from intake.models import Call, Ticket
from intake.phrases import spoken_ref
from intake.service import is_participant
from intake.tickets import format_ref, record_event
from voice import filing
from voice.ivr.base import app_config, bp, current_call, db_sessions, param, script_for
from voice.ivr.prompts import main_menu


def progress_prompt(call: Call) -> Response:
    script = script_for(call)
    gather = script.gather("/voice/progress/lookup", timeout=10, finish_on_key="#")
    script.say("voice_progress_prompt", gather)
    script.redirect("/voice/menu", n=2)
    return script.http()


@bp.post("/progress")
def progress() -> Response:
    return progress_prompt(current_call())


@bp.post("/progress/lookup")
def progress_lookup() -> Response:
    call = current_call()
    digits = param("Digits", 40)
    script = script_for(call)
    ticket_ref = (
        format_ref(app_config().ticket_prefix, int(digits))
        if digits.isdigit() and len(digits) <= 9 and int(digits) > 0
        else None
    )
    with db_sessions()() as session:
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
            filing.record_step(db_sessions(), call.id, f"progress:{ticket.ref}", filed=True)
    main_menu(script, 2)
    return script.http()
