"""The incident announcement: a known caller from an affected building hears it before the menu.

`/voice/incoming` (or, for a caller who must choose a language first, `/voice/language`) asks
`announcement(call)`; for a caller whose home is under an active incident
it answers TwiML that says the incident in the caller's language and gathers one digit: 1 goes on
to the normal menu (`/voice/incident/choice`), anything else or silence says goodbye. The call is
counted as the incident's contact (by CallSid) and marked filed, so hanging up files no missed
call and no ticket; pressing 1 takes the mark back. The caller's home is read with their name
when the call arrives (`Call.meta['home']`) and the active incidents are the process's cache, so
the announcement costs a caller whose building is not affected no query at all.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.incidents import (
    active_for_resident,
    active_over_home,
    buildings_under_incidents,
    incident_context,
    record_contact,
)
from intake.models import Call, Incident
from voice import filing
from voice.context import app_config, app_settings, current_call, db_sessions, script_for
from voice.signature import refuse_unsigned

log = logging.getLogger(__name__)
MAX_BUILDING_CHOICES = 8  # keys 1-8 (9 and 0 are the menu's emergency and operator elsewhere)
bp = Blueprint("voice_incidents", __name__, url_prefix="/voice/incident")


@bp.before_request
def _check_signature() -> Response | None:
    settings = app_settings()
    return refuse_unsigned(
        settings.public_base_url, settings.webhook_auth_token, log, settings.redis_url
    )


def announcement(call: Call) -> Response | None:
    """TwiML announcing the incident over the caller's home, or None (the usual greeting)."""
    if call.resident_id is None or call.language is None:
        return None  # not known, or the language menu comes first (then it is announced)
    if any(str(step).startswith("incident:") for step in call.ivr_path or []):
        return None  # announced once per call
    now = utcnow()
    home = (call.meta or {}).get("home")
    with db_sessions()() as session:
        found = (
            active_over_home(session, home[0], home[1], now)
            if home
            else active_for_resident(session, call.resident_id, now)
        )
        if not found:
            return None
        return _announce(session, call, found[0])


def _announce(session: Session, call: Call, incident: Incident) -> Response:
    """Says the incident, counts the call as its contact and marks the call filed (a hang-up
    files nothing); 1 goes on to the normal menu."""
    record_contact(
        session,
        incident.id,
        channel="voice",
        external_id=call.call_sid,
        resident_id=call.resident_id,
        phone=call.from_number,
        email=None,
    )
    script = script_for(call)
    context = incident_context(session, incident.id, script.lang.key, app_config())
    context.pop("company")  # the script says its own
    session.commit()
    filing.record_step(db_sessions(), call.id, f"incident:{incident.id}", filed=True)
    gather = script.gather("/voice/incident/choice", num_digits=1, timeout=5)
    script.say("incident_announcement", gather, **context)
    script.say("voice_goodbye")
    script.hangup()
    return script.http()


@bp.post("/choice")
def choice() -> Response:
    """1: the caller's problem is something else, so the normal menu (and filing) takes over."""
    call = current_call()
    script = script_for(call)
    if (request.form.get("Digits") or "")[:12] == "1":
        filing.record_step(db_sessions(), call.id, "incident:continue", filed=False)
        script.redirect("/voice/menu", n=1)
        return script.http()
    script.say("voice_goodbye")
    script.hangup()
    return script.http()


def offered_buildings(call: Call) -> list[tuple[int, str]]:
    """The buildings a caller whose home we do not know may choose to hear an incident of (the
    main menu's 8): none once the call has heard one, none for a caller placed already."""
    if call.language is None or (call.meta or {}).get("home"):
        return []
    if any(str(step).startswith("incident:") for step in call.ivr_path or []):
        return []
    with db_sessions()() as session:
        return buildings_under_incidents(session, utcnow())[:MAX_BUILDING_CHOICES]


@bp.post("/buildings")
def buildings() -> Response:
    """Which building? One key each, in code order; no key goes back to the main menu."""
    call = current_call()
    script = script_for(call)
    offered = offered_buildings(call)
    if offered:
        gather = script.gather("/voice/incident/building", num_digits=1, timeout=6)
        script.say("incident_building_menu", gather)
        for digit, (_building_id, name) in enumerate(offered, start=1):
            script.say("incident_building_option", gather, building=name, digit=digit)
    script.redirect("/voice/menu", n=1)
    return script.http()


@bp.post("/building")
def building() -> Response:
    """The chosen building's incident, said as to a resident of it."""
    call = current_call()
    offered = offered_buildings(call)
    digits = (request.form.get("Digits") or "")[:12]
    if not (digits.isdigit() and 1 <= int(digits) <= len(offered)):
        script = script_for(call)
        if offered:
            script.say("voice_invalid_choice")
            script.redirect("/voice/incident/buildings")
        else:
            script.redirect("/voice/menu", n=1)
        return script.http()
    building_id = offered[int(digits) - 1][0]
    with db_sessions()() as session:
        found = active_over_home(session, building_id, None, utcnow())
        if found:
            return _announce(session, call, found[0])
    script = script_for(call)
    script.redirect("/voice/menu", n=1)  # resolved in the meantime
    return script.http()
