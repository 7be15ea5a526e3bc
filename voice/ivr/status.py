"""Twilio's call status callbacks: each applied once, in order; a hang-up before anything was
filed becomes a missed call (or the message's ticket)."""

from __future__ import annotations

import logging

from flask import Response, abort, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from intake.models import Call, CallStatusEvent, utcnow
from voice import filing
from voice.dialer import FINAL_STATUSES as TERMINAL
from voice.ivr.base import app_config, bp, db_sessions, param
from voice.ivr.queue import desk_left
from voice.ivr.reports import ensure_ticket
from voice.twiml import empty

log = logging.getLogger(__name__)


def _sequence(status: str) -> int:
    raw = param("SequenceNumber", 9)
    return int(raw) if raw.isdigit() else 1000 + filing.STATUS_RANK.get(status, 4)


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
        filing.file_missed_call(db_sessions(), call, app_config(), utcnow())
        return
    assert topic is not None
    ensure_ticket(call, topic, "voice_hung_up_recording")
    if topic in filing.VOICEMAIL_CALLBACKS:
        filing.owe_callback(
            db_sessions(), call, app_config(), filing.VOICEMAIL_CALLBACKS[topic], now=utcnow()
        )


@bp.post("/status")
def status() -> Response:
    call_sid = param("CallSid", 64)
    status_value = param("CallStatus", 20)
    if not call_sid or not status_value:
        abort(400, description="CallSid and CallStatus are required")
    sequence = _sequence(status_value)
    sessions = db_sessions()
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
    if ends_now and call is not None:
        desk_left(call, "abandoned")
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
                filing.apply_status(
                    session,
                    row,
                    status_value,
                    sequence,
                    answered_by=param("AnsweredBy", 30),
                    duration=param("CallDuration", 9),
                )
            session.commit()
        except IntegrityError:
            session.rollback()
            log.info("status %s (%s) of %s already recorded", status_value, sequence, call_sid)
    return empty()
