"""Desk jobs: ring an operator for an offer, bridge the caller to whoever accepted, stop an offer
nobody took, move a caller to a transfer. Each takes an id and is safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from intake import desk
from intake.clock import utcnow
from intake.models import DeskCall, DeskOffer, DeskTransfer
from intake.tickets import enqueue_after_commit
from voice import desk as voice_desk
from voice import filing
from worker.context import config, sessions, settings

log = logging.getLogger(__name__)
# How long past the ring timeout a warm transfer waits for Twilio's status of the target's leg.
TRANSFER_SILENCE = timedelta(seconds=30)


def desk_ring_operator(offer_id: int) -> str:
    with sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None or offer.status != "ringing":
            return "not ringing"
        try:
            sid = voice_desk.ring(session, settings(), offer)
        except Exception as exc:  # a device Twilio refuses, or Twilio down: the next operator
            log.warning(
                "could not ring operator %s for offer %s: %s", offer.operator_id, offer_id, exc
            )
            session.rollback()
            desk.offer_missed(session, config(), offer_id, now=utcnow())
            desk.distribute(session, config(), utcnow())
            session.commit()
            return "failed"
        if sid is None:
            desk.offer_missed(session, config(), offer_id, now=utcnow())
            desk.distribute(session, config(), utcnow())
        session.commit()
        return sid or "no device"


def desk_bridge_caller(offer_id: int) -> str:
    with sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None or offer.status != "accepted":
            return "not accepted"
        voice_desk.bridge(session, settings(), offer)
        session.commit()
        return "bridged"


def desk_cancel_offer(offer_id: int) -> str:
    with sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None or offer.status in ("ringing", "accepted", "done"):
            return "live"
        voice_desk.stop_ringing(settings(), offer)
        return "stopped"


def desk_transfer_caller(desk_call_id: int) -> str:
    with sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None or desk_call.status != desk.CONNECTED or not desk_call.transferred_to:
            return "not transferring"
        voice_desk.move_to_transfer(session, settings(), desk_call)
        session.commit()
        return "moved"


def desk_dial_transfer(transfer_id: int) -> str:
    """Warm transfer: hold the caller (first number only) and ring the target's current number."""
    with sessions()() as session:
        transfer = session.get(DeskTransfer, transfer_id)
        if transfer is None or transfer.status != "dialling":
            return "not dialling"
        if transfer.number_index == 0:
            voice_desk.hold_caller(session, settings(), transfer.desk_call, True)
        try:
            sid = voice_desk.dial_transfer(session, settings(), transfer)
        except Exception as exc:  # Twilio refused the number, or is down: try the next one
            log.warning("could not dial transfer %s: %s", transfer_id, exc)
            session.rollback()
            transfer = session.get(DeskTransfer, transfer_id)
            assert transfer is not None
            sid = None
        if sid is None:
            desk.transfer_failed(session, config(), transfer, utcnow())
        else:
            # Twilio's word on the target's leg can be lost: if it never comes, give up on this
            # number as if it had not answered (the caller is never left on hold for good).
            enqueue_after_commit(
                session,
                "desk_transfer_timeout",
                queue="urgent",
                dedupe_key=f"desk:transfer-timeout:{transfer.id}:{transfer.number_index}",
                available_at=utcnow()
                + TRANSFER_SILENCE
                + timedelta(seconds=config().voice.desk.ring_seconds),
                transfer_id=transfer.id,
                number_index=transfer.number_index,
            )
        session.commit()
        return sid or "failed"


def desk_transfer_timeout(transfer_id: int, number_index: int) -> str:
    """The target's number rang past its timeout and no status came: the next number, or the
    caller back with the operator (or the queue)."""
    with sessions()() as session:
        transfer = session.get(DeskTransfer, transfer_id)
        if transfer is None or transfer.status != "dialling":
            return "settled"
        if transfer.number_index != number_index:
            return "moved on"
        log.warning(
            "transfer %s: no word on number %s; treated as unanswered", transfer_id, number_index
        )
        desk.transfer_failed(session, config(), transfer, utcnow())
        session.commit()
        return "timed out"


def desk_hold_caller(desk_call_id: int, hold: bool) -> str:
    with sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            return "no call"
        done = voice_desk.hold_caller(session, settings(), desk_call, hold)
        session.commit()
        return done


def desk_hangup_caller(desk_call_id: int) -> str:
    """Nobody is left on the desk's side of the conference: end the caller's leg."""
    with sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None or desk_call.status != "ended":
            return "not ended"
        voice_desk.hang_up(settings(), desk_call.call_sid)
        return "hung up"


def desk_stop_transfer(transfer_id: int) -> str:
    """The caller left while a transfer target was being rung: stop ringing it."""
    with sessions()() as session:
        transfer = session.get(DeskTransfer, transfer_id)
        if transfer is None or transfer.status != "canceled" or not transfer.target_call_sid:
            return "nothing to stop"
        voice_desk.hang_up(settings(), transfer.target_call_sid)
        return "stopped"


def desk_leave_call(offer_id: int) -> str:
    """The operator handed a warm transfer over from the console: hang up their leg."""
    with sessions()() as session:
        offer = session.get(DeskOffer, offer_id)
        if offer is None or offer.status != "accepted" or not offer.call_sid:
            return "not on the call"
        voice_desk.hang_up(settings(), offer.call_sid)
        return "left"


def desk_attach_recordings(desk_call_id: int) -> str:
    """Put a desk call's recordings on its ticket (once each: keyed by RecordingSid)."""
    with sessions()() as session:
        desk_call = session.get(DeskCall, desk_call_id)
        if desk_call is None:
            return "no call"
        call = desk_call.call
        if call.ticket_id is None and desk_call.ticket_id is not None:
            call.ticket_id = desk_call.ticket_id
            session.commit()
        recordings = list((desk_call.meta or {}).get("recordings") or [])
        session.expunge(call)
    if call.ticket_id is None:
        return "no ticket yet"
    for recording in recordings:
        filing.attach_recording(
            sessions(),
            call,
            config(),
            recording_sid=recording["sid"],
            recording_url=recording.get("url"),
            duration=recording.get("duration"),
            fetch=settings().twilio_configured,
            kind="call_recording",
        )
    return f"{len(recordings)} attached"
