"""Waiting for an operator: the queue, its hold loop, virtual hold (a callback instead) and leaving it.

The decisions (who is offered which caller, the maximum wait) are `intake.desk`'s; this is their TwiML.
"""

from __future__ import annotations

from flask import Response, request

from intake import desk
from intake.calendar import describe_hours, is_open
from intake.models import Call, utcnow
from intake.phrases import spoken_ref
from voice import filing
from voice.ivr.base import (
    MAX_DIGITS,
    app_config,
    bp,
    current_call,
    db_sessions,
    param,
    script_for,
)
from voice.ivr.prompts import enqueue, voicemail
from voice.ivr.reports import ensure_ticket


def operator_or_voicemail(call: Call) -> Response:
    config = app_config()
    script = script_for(call)
    now = utcnow()
    if is_open(now, config):
        desk_enter(call, step="queue")
        script.say("voice_operator_connecting")
        enqueue(script, {})
        return script.http()
    filing.record_step(
        db_sessions(), call.id, "after_hours", meta={**(call.meta or {}), "topic": "after_hours"}
    )
    voicemail(
        script,
        "voice_after_hours",
        "after_hours",
        call,
        hours=describe_hours(config, script.lang.written),
    )
    return script.http()


@bp.post("/operator")
def operator() -> Response:
    return operator_or_voicemail(current_call())


def desk_enter(call: Call, step: str | None = None) -> None:
    """The caller waits for a person at the desk: offered to an operator at once if one is free
    (one transaction, with the IVR step when given)."""
    with db_sessions()() as session:
        row = session.get(Call, call.id)
        assert row is not None
        if step is not None:
            row.ivr_path = [*row.ivr_path, step][-50:]
            row.queue_entered_at = row.queue_entered_at or utcnow()
        desk.enter_queue(session, row, utcnow())
        desk.distribute(session, app_config(), utcnow())
        session.commit()


def _desk_wait(call: Call) -> tuple[int | None, bool]:
    """A tick of the caller's hold loop: offers move on; (position, over the maximum wait)."""
    now = utcnow()
    with db_sessions()() as session:
        desk_call = desk.desk_call_for(session, call.call_sid)
        if desk_call is None:
            return None, False
        desk.distribute(session, app_config(), now)
        over = (
            desk_call.status == desk.WAITING
            and desk.live_offer(session, desk_call.id) is None
            and desk.over_max_wait(desk_call, app_config().voice.desk, now)
        )
        if over:
            desk.leave_queue(session, desk_call, app_config().voice.desk.after_max_wait, now)
        found = desk.position(session, desk_call) if desk_call.status == desk.WAITING else None
        session.commit()
        return found, over


def desk_left(call: Call, status: str) -> str | None:
    """The caller left the queue; returns the desk call's status (None: not a desk caller)."""
    with db_sessions()() as session:
        desk_call = desk.desk_call_for(session, call.call_sid)
        if desk_call is None:
            return None
        desk.leave_queue(session, desk_call, status, utcnow())
        desk.distribute(session, app_config(), utcnow())
        session.commit()
        return desk_call.status


@bp.post("/queue/wait")
def queue_wait() -> Response:
    call = current_call()
    script = script_for(call)
    ours, over = _desk_wait(call)
    if over:
        script.response.leave()
        return script.http()
    if request.args.get("callback"):
        script.say("voice_queue_hold_on")
        script.response.pause(length=10)
        return script.http()
    position = param("QueuePosition", 6)
    if ours is not None and not position.isdigit():
        position = str(ours)  # Twilio's own count when it sends one
    gather = script.gather("/voice/queue/hold", num_digits=1, timeout=8)
    script.say("voice_queue_position", gather, position=int(position) if position.isdigit() else 1)
    script.response.pause(length=5)
    return script.http()


@bp.post("/queue/hold")
def queue_hold() -> Response:
    """Virtual hold: the caller leaves the queue and is called back in the order they joined it."""
    call = current_call()
    script = script_for(call)
    if param("Digits", MAX_DIGITS) != "1":
        script.redirect("/voice/queue/wait")
        return script.http()
    _, ref = ensure_ticket(call, "operator", "voice_virtual_hold_text")
    desk_left(call, "callback")
    filing.record_step(db_sessions(), call.id, "virtual_hold")
    filing.owe_callback(
        db_sessions(),
        call,
        app_config(),
        "virtual_hold",
        queued_at=call.queue_entered_at or utcnow(),
        now=utcnow(),
    )
    script.say("voice_virtual_hold_confirmed", ref_spoken=spoken_ref(ref, script.lang.key))
    script.response.leave()
    return script.http()


@bp.post("/queue/left")
def queue_left() -> Response:
    call = current_call()
    result = param("QueueResult", 30)
    script = script_for(call)
    left = desk_left(call, "abandoned" if result == "hangup" else "voicemail")
    if result in ("redirected", "bridging-in-process") and left in (desk.CONNECTED, "ended"):
        return script.http()  # moved to the operator by REST: this answer is not played
    if result == "leave" and left == "callback" and "virtual_hold" not in call.ivr_path:
        _, ref = ensure_ticket(call, "operator", "voice_virtual_hold_text")
        filing.owe_callback(
            db_sessions(),
            call,
            app_config(),
            "virtual_hold",
            queued_at=call.queue_entered_at,
            now=utcnow(),
        )
        script.say("voice_virtual_hold_confirmed", ref_spoken=spoken_ref(ref, script.lang.key))
        script.hangup()
        return script.http()
    if result == "leave" and left == "voicemail":
        filing.record_step(db_sessions(), call.id, "queue:max_wait")
        voicemail(script, "voice_queue_unavailable", "voicemail", call)
        return script.http()
    if result == "bridged":
        filing.record_step(db_sessions(), call.id, "bridged")
        script.hangup()
    elif result in ("leave", "redirected") and call.ticket_id is not None:
        script.say("voice_goodbye")
        script.hangup()
    elif result == "hangup":
        script.hangup()
    else:
        filing.record_step(db_sessions(), call.id, f"queue:{result or 'unknown'}")
        voicemail(script, "voice_queue_unavailable", "voicemail", call)
    return script.http()
