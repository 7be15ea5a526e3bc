"""The operators' desk: presence, which operator is offered which waiting caller, and the figures.

Our own distributor on the database (no TaskRouter): a caller who asks for a person gets a
`DeskCall`; `distribute` offers each waiting caller to the longest-idle available operator who
speaks the caller's language (anyone after `any_language_after_seconds`). Partial unique indexes
allow one live offer per caller and per operator, so racing web processes cannot offer one caller
twice or one operator two callers; `accept` is a conditional update, so exactly one offer wins.
The TwiML and REST calls that carry these decisions out live in `voice/`, the jobs in `worker/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.config import DeskSection, HotlineConfig
from intake.constants import OPEN_STATUSES
from intake.db import insert_unless_present, rowcount, serialize_transactions
from intake.models import (
    Call,
    ContactPoint,
    DeskCall,
    DeskOffer,
    DeskTransfer,
    Interaction,
    Operator,
    OperatorPresence,
    Resident,
    Ticket,
)
from intake.tickets import enqueue_after_commit, record_event

STATES = ("available", "on_call", "wrap_up", "away")
MANUAL_STATES = ("available", "away")
DESK_ROLES = ("operator", "supervisor", "admin")
WAITING = "waiting"
CONNECTED = "connected"


# --- presence ---------------------------------------------------------------------------------


def presence(session: Session, operator: Operator, now: datetime | None = None) -> OperatorPresence:
    """The operator's presence row (created away); an expired wrap-up becomes available."""
    now = now or utcnow()
    row = session.get(OperatorPresence, operator.id)
    if row is None:
        row = OperatorPresence(
            operator_id=operator.id,
            state="away",
            languages=default_languages(operator),
            device=operator.phone,
            since=now,
            missed_offers=0,
        )
        session.add(row)
        session.flush()
    _end_wrap_up(row, now)
    return row


def default_languages(operator: Operator) -> list[str]:
    return {"zh-Hans": ["zh-Hans", "zh-Hant"], "en": ["en"]}.get(operator.language, ["zh-Hant"])


def _end_wrap_up(row: OperatorPresence, now: datetime) -> None:
    if row.state == "wrap_up" and row.wrap_until is not None and row.wrap_until <= now:
        row.state, row.since, row.idle_since, row.wrap_until = (
            "available",
            row.wrap_until,
            row.wrap_until,
            None,
        )


def set_state(
    session: Session,
    operator: Operator,
    state: str,
    *,
    now: datetime | None = None,
    languages: list[str] | None = None,
    device: str | None = None,
) -> OperatorPresence:
    """Presence set by the operator (console header, `hotline operators state`, sign-out)."""
    if state not in MANUAL_STATES:
        raise ValueError(f"state must be one of {', '.join(MANUAL_STATES)}")
    now = now or utcnow()
    row = presence(session, operator, now)
    if languages is not None:
        row.languages = list(languages)
    if device is not None:
        row.device = device or None
    if row.state in ("on_call",) and state == "available":
        return row  # a live call decides when it ends
    if row.state != state:
        row.state, row.since = state, now
        if state == "available":
            row.idle_since, row.missed_offers, row.wrap_until = now, 0, None
    return row


def client_identity(operator: Operator) -> str:
    """The operator's name on Twilio's Voice SDK (short, letters, digits and underscore)."""
    return f"op_{operator.id}"


def set_headset(session: Session, operator: Operator, on: bool) -> OperatorPresence:
    """Offers ring the operator's browser (`client:` device) instead of their phone, or back."""
    row = presence(session, operator)
    row.device = f"client:{client_identity(operator)}" if on else (operator.phone or None)
    return row


def operators_list(session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every desk operator and their state (for `hotline operators list` and the wallboard)."""
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    operators = session.scalars(
        select(Operator)
        .where(Operator.active.is_(True), Operator.role.in_(DESK_ROLES))
        .order_by(Operator.id)
    ).all()
    for op in operators:
        row = presence(session, op, now)
        rows.append(
            {
                "email": op.email,
                "name": op.name,
                "state": row.state,
                "since": row.since.isoformat(),
                "languages": list(row.languages),
                "device": row.device,
                "missed_offers": row.missed_offers,
            }
        )
    return rows


# --- callers ----------------------------------------------------------------------------------


def enter_queue(session: Session, call: Call, now: datetime | None = None) -> DeskCall:
    """The caller asked for a person (idempotent per call: a caller back from a failed transfer
    waits again in their old place)."""
    now = now or utcnow()
    created = session.scalars(
        insert_unless_present(session, DeskCall)
        .values(
            call_id=call.id,
            call_sid=call.call_sid,
            language=call.language,
            status=WAITING,
            entered_at=now,
            ticket_id=call.ticket_id,
            meta={},
        )
        .returning(DeskCall)
    ).first()
    if created is not None:
        return cast(DeskCall, created)
    found = session.scalar(select(DeskCall).where(DeskCall.call_id == call.id))
    assert found is not None
    if found.status not in (WAITING, CONNECTED):
        found.status = WAITING
    return found


def desk_call_for(session: Session, call_sid: str) -> DeskCall | None:
    return session.scalar(select(DeskCall).where(DeskCall.call_sid == call_sid))


def position(session: Session, desk_call: DeskCall) -> int:
    """1 = next to be answered."""
    ahead = session.scalar(
        select(func.count(DeskCall.id)).where(
            DeskCall.status == WAITING, DeskCall.entered_at < desk_call.entered_at
        )
    )
    return int(ahead or 0) + 1


def live_offer(session: Session, desk_call_id: int) -> DeskOffer | None:
    return session.scalar(
        select(DeskOffer).where(
            DeskOffer.desk_call_id == desk_call_id, DeskOffer.status.in_(("ringing", "accepted"))
        )
    )


def leave_queue(
    session: Session, desk_call: DeskCall, status: str, now: datetime | None = None
) -> list[int]:
    """The caller left the queue (abandoned, callback, voicemail): live offers are cancelled.
    Returns the cancelled offers' ids (their ringing phones must stop)."""
    now = now or utcnow()
    cancelled: list[int] = []
    if desk_call.status == WAITING:
        desk_call.status, desk_call.ended_at = status, now
        for offer in session.scalars(
            select(DeskOffer).where(
                DeskOffer.desk_call_id == desk_call.id, DeskOffer.status == "ringing"
            )
        ):
            offer.status, offer.ended_at = "canceled", now
            cancelled.append(offer.id)
            enqueue_after_commit(
                session,
                "desk_cancel_offer",
                dedupe_key=f"desk:cancel:{offer.id}",
                offer_id=offer.id,
            )
    return cancelled


def over_max_wait(desk_call: DeskCall, settings: DeskSection, now: datetime) -> bool:
    return (now - desk_call.entered_at).total_seconds() >= settings.max_wait_seconds


# --- distribution -----------------------------------------------------------------------------


def _rang_out(offer: Any, settings: DeskSection, now: datetime) -> bool:
    """A ringing offer nobody took within `ring_seconds` (the next operator gets the caller); one
    whose phone was never rung (its job not yet run) gets three times as long."""
    if offer.status != "ringing":
        return False
    if offer.call_sid is not None:
        return bool(offer.created_at <= now - timedelta(seconds=settings.ring_seconds + 5))
    return bool(offer.created_at <= now - timedelta(seconds=3 * settings.ring_seconds))


def offer_missed(
    session: Session, config: HotlineConfig, offer_id: int, *, now: datetime | None = None
) -> bool:
    """Nobody accepted: after `away_after_missed` in a row the operator is set away."""
    now = now or utcnow()
    done = session.execute(
        update(DeskOffer)
        .where(DeskOffer.id == offer_id, DeskOffer.status == "ringing")
        .values(status="missed", ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        return False
    offer = session.get(DeskOffer, offer_id)
    assert offer is not None
    session.refresh(offer)
    row = presence(session, offer.operator, now)
    row.missed_offers += 1
    if row.missed_offers >= config.voice.desk.away_after_missed and row.state == "available":
        row.state, row.since = "away", now
    enqueue_after_commit(
        session, "desk_cancel_offer", dedupe_key=f"desk:cancel:{offer.id}", offer_id=offer.id
    )
    return True


def _one_distributor_at_a_time(session: Session) -> None:
    """Distributors take turns until commit. Without it, a burst of callers all try the same
    longest-idle operator: each insert waits on the previous transaction's uncommitted row in the
    unique index, fails, and tries the next operator — a queue of lock waits that grows with the
    burst."""
    serialize_transactions(session, "desk distribution")


def distribute(session: Session, config: HotlineConfig, now: datetime | None = None) -> list[int]:
    """Offer every waiting caller without a live offer to an operator; returns new offer ids.
    The caller commits; the ring jobs are outbox rows, sent only once it has."""
    now = now or utcnow()
    settings = config.voice.desk
    _one_distributor_at_a_time(session)
    live = session.execute(
        select(
            DeskOffer.id,
            DeskOffer.operator_id,
            DeskOffer.desk_call_id,
            DeskOffer.status,
            DeskOffer.created_at,
            DeskOffer.call_sid,
        ).where(DeskOffer.status.in_(("ringing", "accepted")))
    ).all()
    rang_out = {row.id for row in live if _rang_out(row, settings, now)}
    for offer_id in sorted(rang_out):
        offer_missed(session, config, offer_id, now=now)
    live = [row for row in live if row.id not in rang_out]
    busy_ops = {row.operator_id for row in live}
    offered_calls = {row.desk_call_id for row in live}
    free: list[OperatorPresence] = []
    for row in session.scalars(
        select(OperatorPresence).where(OperatorPresence.state.in_(("available", "wrap_up")))
    ):
        _end_wrap_up(row, now)
        if row.state == "available" and row.operator_id not in busy_ops and row.device:
            free.append(row)
    free.sort(key=lambda r: (r.idle_since or r.since, r.operator_id))
    created: list[int] = []
    if not free:
        return created  # nobody to offer to: the callers keep waiting
    waiting = [
        desk_call
        for desk_call in session.scalars(
            select(DeskCall)
            .where(DeskCall.status == WAITING)
            .order_by(DeskCall.entered_at, DeskCall.id)
        )
        if desk_call.id not in offered_calls
    ]
    tried: dict[int, set[int]] = {desk_call.id: set() for desk_call in waiting}
    if waiting:
        for past in session.execute(
            select(DeskOffer.desk_call_id, DeskOffer.operator_id).where(
                DeskOffer.desk_call_id.in_(list(tried))
            )
        ):
            tried[past.desk_call_id].add(past.operator_id)
    for desk_call in waiting:
        if not free:
            break
        anyone = (now - desk_call.entered_at).total_seconds() >= settings.any_language_after_seconds
        candidates = [
            r
            for r in free
            if (desk_call.language is None or desk_call.language in r.languages or anyone)
        ]
        # Someone not yet tried for this caller first; when all have been, start the round again.
        fresh = [r for r in candidates if r.operator_id not in tried[desk_call.id]] or candidates
        for row in fresh:
            offer_id = session.scalar(
                insert_unless_present(session, DeskOffer)
                .values(
                    desk_call_id=desk_call.id,
                    operator_id=row.operator_id,
                    status="ringing",
                    created_at=now,
                )
                .returning(DeskOffer.id)
            )
            if offer_id is None:
                continue  # another process offered this caller or this operator just now
            free.remove(row)
            created.append(offer_id)
            enqueue_after_commit(
                session,
                "desk_ring_operator",
                queue="urgent",
                dedupe_key=f"desk:ring:{offer_id}",
                offer_id=offer_id,
            )
            break
    return created


# --- an offer answered, a live call, its end ----------------------------------------------------


def accept(session: Session, offer_id: int, now: datetime | None = None) -> DeskOffer | None:
    """The operator pressed the key: exactly one accept wins, and only while the caller waits."""
    now = now or utcnow()
    offer = session.get(DeskOffer, offer_id)
    if offer is None:
        return None
    won = session.execute(
        update(DeskOffer)
        .where(DeskOffer.id == offer_id, DeskOffer.status == "ringing")
        .values(status="accepted", answered_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(won) != 1:
        return None
    taken = session.execute(
        update(DeskCall)
        .where(DeskCall.id == offer.desk_call_id, DeskCall.status == WAITING)
        .values(status=CONNECTED, operator_id=offer.operator_id)
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken) != 1:
        session.execute(
            update(DeskOffer)
            .where(DeskOffer.id == offer_id)
            .values(status="canceled", ended_at=now)
        )
        return None
    session.refresh(offer)
    desk_call = offer.desk_call
    session.refresh(desk_call)
    if desk_call.answered_at is None:
        desk_call.answered_at = now
    row = presence(session, offer.operator, now)
    row.state, row.since, row.missed_offers = "on_call", now, 0
    if desk_call.ticket_id is not None:
        ticket = session.get(Ticket, desk_call.ticket_id)
        if ticket is not None:
            record_event(
                session,
                ticket,
                "call_answered",
                f"{offer.operator.name} answered the call",
                actor=offer.operator.email,
                operator_id=offer.operator_id,
            )
    enqueue_after_commit(
        session,
        "desk_bridge_caller",
        queue="urgent",
        dedupe_key=f"desk:bridge:{offer.id}",
        offer_id=offer.id,
    )
    return offer


def operator_hung_up(
    session: Session,
    config: HotlineConfig,
    offer_id: int,
    *,
    talk_seconds: int | None,
    now: datetime | None = None,
) -> None:
    """The operator's leg ended after a live call: wrap-up for the configured seconds."""
    now = now or utcnow()
    offer = session.get(DeskOffer, offer_id)
    if offer is None or offer.status != "accepted":
        return
    settings = config.voice.desk
    offer.status, offer.ended_at = "done", now
    desk_call = offer.desk_call
    talk = talk_seconds
    if talk is None and offer.answered_at is not None:
        talk = int((now - offer.answered_at).total_seconds())
    desk_call.talk_seconds = (desk_call.talk_seconds or 0) + (talk or 0)
    desk_call.wrap_seconds = settings.wrap_up_seconds
    session.flush()
    staff_left(session, desk_call, now=now)
    row = presence(session, offer.operator, now)
    if row.state == "on_call":
        row.state, row.since = "wrap_up", now
        row.wrap_until = now + timedelta(seconds=settings.wrap_up_seconds)
    if desk_call.ticket_id is not None:
        ticket = session.get(Ticket, desk_call.ticket_id)
        if ticket is not None:
            record_event(
                session,
                ticket,
                "call_handled",
                f"{offer.operator.name} talked with the caller for {desk_call.talk_seconds} s",
                actor=offer.operator.email,
                operator_id=offer.operator_id,
                talk_seconds=desk_call.talk_seconds,
            )


def caller_hung_up(session: Session, desk_call: DeskCall, now: datetime | None = None) -> None:
    """The caller's leg ended: a call still connected is over (the operator then wraps up)."""
    now = now or utcnow()
    if desk_call.status == CONNECTED:
        desk_call.status, desk_call.ended_at = "ended", now
    for transfer in session.scalars(
        select(DeskTransfer).where(
            DeskTransfer.desk_call_id == desk_call.id, DeskTransfer.status.in_(LIVE_TRANSFER)
        )
    ):
        transfer.status, transfer.ended_at = "canceled", now
        if transfer.target_call_sid:
            enqueue_after_commit(
                session,
                "desk_stop_transfer",
                dedupe_key=f"desk:stop-transfer:{transfer.id}",
                transfer_id=transfer.id,
            )


def live_call_of(session: Session, operator_id: int) -> DeskOffer | None:
    """The operator's offer ringing now, or the call they are on."""
    return session.scalar(
        select(DeskOffer)
        .where(DeskOffer.operator_id == operator_id, DeskOffer.status.in_(("ringing", "accepted")))
        .order_by(DeskOffer.id.desc())
    )


def last_call_of(session: Session, operator_id: int) -> DeskCall | None:
    """The call an operator most recently handled (for the wrap-up disposition)."""
    return session.scalar(
        select(DeskCall)
        .where(DeskCall.operator_id == operator_id)
        .order_by(DeskCall.answered_at.desc(), DeskCall.id.desc())
    )


def attach_ticket(session: Session, desk_call: DeskCall, ticket: Ticket, actor: Operator) -> None:
    """The live call belongs to `ticket`: the call row and the timeline say who answered it."""
    desk_call.ticket_id = ticket.id
    call = desk_call.call
    if call.ticket_id is None:
        call.ticket_id = ticket.id
    exists = session.scalar(
        select(Interaction.id).where(
            Interaction.channel == "voice", Interaction.external_id == f"desk:{desk_call.call_sid}"
        )
    )
    if exists is None:
        session.add(
            Interaction(
                ticket_id=ticket.id,
                kind="call",
                direction="in",
                channel="voice",
                external_id=f"desk:{desk_call.call_sid}",
                sender=call.from_number,
                body_text=f"{actor.name} answered the call from {call.from_number or '—'}",
                operator_id=actor.id,
                meta={"call_sid": desk_call.call_sid, "operator": actor.email},
            )
        )
    if (desk_call.meta or {}).get("recordings"):
        attach_recordings_later(session, desk_call)
    record_event(
        session,
        ticket,
        "call_attached",
        f"live call {desk_call.call_sid} answered by {actor.name}",
        actor=actor.email,
        operator_id=actor.id,
    )


def recording_done(session: Session, desk_call: DeskCall, recording: dict[str, Any]) -> None:
    """Twilio finished recording the call: kept on the desk call, and put on its ticket by a job
    (at once if the call has a ticket, else when the operator files or picks one)."""
    kept = list((desk_call.meta or {}).get("recordings") or [])
    if any(r.get("sid") == recording["sid"] for r in kept):
        return
    desk_call.meta = {**(desk_call.meta or {}), "recordings": [*kept, recording]}
    if desk_call.ticket_id is not None or desk_call.call.ticket_id is not None:
        attach_recordings_later(session, desk_call)


def attach_recordings_later(session: Session, desk_call: DeskCall) -> None:
    enqueue_after_commit(
        session,
        "desk_attach_recordings",
        queue="low",
        dedupe_key=f"desk:recordings:{desk_call.id}:{utcnow().timestamp()}",
        desk_call_id=desk_call.id,
    )


def set_disposition(desk_call: DeskCall, disposition: str, config: HotlineConfig) -> None:
    if disposition not in config.voice.desk.dispositions:
        raise ValueError("unknown disposition")
    desk_call.disposition = disposition


TRANSFER_MODES = ("warm", "cold")
LIVE_TRANSFER = ("dialling", "consulting")
QUEUE_TARGET = "operators"


def live_transfer(session: Session, desk_call_id: int) -> DeskTransfer | None:
    """The transfer of this call still under way (dialling its target, or consulting)."""
    return session.scalar(
        select(DeskTransfer)
        .where(DeskTransfer.desk_call_id == desk_call_id, DeskTransfer.status.in_(LIVE_TRANSFER))
        .order_by(DeskTransfer.id.desc())
    )


def transfer_numbers(session: Session, transfer: DeskTransfer, config: HotlineConfig) -> list[str]:
    """Where a transfer rings: the department's on-call numbers in turn, or the operator's device."""
    if transfer.target_operator_id is not None:
        row = session.get(OperatorPresence, transfer.target_operator_id)
        return [row.device] if row is not None and row.device else []
    dept = config.department(transfer.target)
    return list(dept.on_call) if dept is not None else []


def request_transfer(
    session: Session,
    desk_call: DeskCall,
    target: str,
    config: HotlineConfig,
    actor: Operator,
    *,
    mode: str = "cold",
    now: datetime | None = None,
) -> DeskTransfer:
    """The operator hands the connected caller on; the caller never drops.

    Cold: the caller is moved out of the conference to the department's on-call numbers in turn
    (or back to the queue, `target="operators"`); nobody answers → back to the queue. Warm: the
    caller is held while the target (a department's on-call, or another operator by email) is
    dialled into the call's conference to talk with the operator first; the operator then hangs up
    to hand over. Nobody answers → the caller is back with the operator (or, if the operator has
    left, in the queue).
    """
    now = now or utcnow()
    if mode not in TRANSFER_MODES:
        raise ValueError("mode must be warm or cold")
    if desk_call.status != CONNECTED:
        raise ValueError("the call is not connected")
    if live_transfer(session, desk_call.id) is not None:
        raise ValueError("a transfer of this call is under way")
    target_operator: Operator | None = None
    if "@" in target:
        target_operator = session.scalar(
            select(Operator).where(Operator.email == target.lower(), Operator.active.is_(True))
        )
        if target_operator is None or target_operator.id == actor.id:
            raise ValueError("no such colleague")
        target_presence = presence(session, target_operator, now)
        if not target_presence.device:
            raise ValueError("that operator has no phone")
        if target_presence.state == "on_call":
            raise ValueError("that operator is on a call")
    elif target == QUEUE_TARGET:
        if mode != "cold":
            raise ValueError("the queue takes cold transfers only")
    else:
        dept = config.department(target)
        if dept is None or not dept.on_call:
            raise ValueError("that department has no on-call number")
    transfer = DeskTransfer(
        desk_call_id=desk_call.id,
        from_operator_id=actor.id,
        mode=mode,
        target=target_operator.email if target_operator else target,
        target_operator_id=target_operator.id if target_operator else None,
        status="dialling",
        number_index=0,
        created_at=now,
    )
    session.add(transfer)
    session.flush()
    _transfer_event(session, desk_call, transfer, "call_transfer_requested", actor.email)
    if mode == "cold":
        desk_call.transferred_to = transfer.target
        enqueue_after_commit(
            session,
            "desk_transfer_caller",
            queue="urgent",
            dedupe_key=f"desk:transfer:{transfer.id}",
            desk_call_id=desk_call.id,
        )
    else:
        enqueue_after_commit(
            session,
            "desk_dial_transfer",
            queue="urgent",
            dedupe_key=f"desk:dial-transfer:{transfer.id}:0",
            transfer_id=transfer.id,
        )
    return transfer


def _transfer_event(
    session: Session, desk_call: DeskCall, transfer: DeskTransfer, kind: str, actor: str
) -> None:
    """Who handed the call to whom, on the call's ticket (when it has one)."""
    if desk_call.ticket_id is None:
        return
    ticket = session.get(Ticket, desk_call.ticket_id)
    if ticket is None:
        return
    words = {
        "call_transfer_requested": "transfers the call to",
        "call_transferred": "handed the call to",
        "call_transfer_failed": "could not reach",
    }[kind]
    record_event(
        session,
        ticket,
        kind,
        f"{transfer.from_operator.name} {words} {transfer.target} ({transfer.mode})",
        actor=actor,
        transfer_id=transfer.id,
        mode=transfer.mode,
        from_operator=transfer.from_operator.email,
        from_name=transfer.from_operator.name,
        target=transfer.target,
        target_name=_target_name(session, transfer),
    )


def _target_name(session: Session, transfer: DeskTransfer) -> str | None:
    if transfer.target_operator_id is None:
        return None
    target = session.get(Operator, transfer.target_operator_id)
    return target.name if target is not None else None


def transfer_answered(
    session: Session, transfer: DeskTransfer, now: datetime | None = None
) -> bool:
    """Warm: the target pressed the key and joins the conference (False: too late)."""
    now = now or utcnow()
    if transfer.status != "dialling" or transfer.desk_call.status != CONNECTED:
        return False
    transfer.status, transfer.answered_at = "consulting", now
    if not _operator_on_line(session, transfer.desk_call_id):
        hand_over(session, transfer, now)  # the operator already left: the target has the caller
    return True


def _operator_on_line(session: Session, desk_call_id: int) -> bool:
    """An operator who accepted this caller is still in the conference."""
    return (
        session.scalar(
            select(DeskOffer.id).where(
                DeskOffer.desk_call_id == desk_call_id, DeskOffer.status == "accepted"
            )
        )
        is not None
    )


def hand_over(session: Session, transfer: DeskTransfer, now: datetime | None = None) -> None:
    """The operator left a consulted transfer: the target now has the caller (off hold).
    `ended_at` stays empty until the target leaves too."""
    now = now or utcnow()
    if transfer.status != "consulting":
        return
    transfer.status = "completed"
    desk_call = transfer.desk_call
    desk_call.transferred_to, desk_call.disposition = transfer.target, "transferred"
    _transfer_event(session, desk_call, transfer, "call_transferred", transfer.from_operator.email)
    _hold(session, desk_call, False, f"handed:{transfer.id}")


def transfer_failed(
    session: Session,
    config: HotlineConfig,
    transfer: DeskTransfer,
    now: datetime | None = None,
) -> None:
    """Nobody took a warm transfer: the next on-call number; after the last, the caller is back
    with the operator, or in the queue when the operator has left. Never dropped."""
    now = now or utcnow()
    if transfer.status != "dialling":
        return
    numbers = transfer_numbers(session, transfer, config)
    if transfer.number_index + 1 < len(numbers):
        transfer.number_index += 1
        transfer.target_call_sid = None
        enqueue_after_commit(
            session,
            "desk_dial_transfer",
            queue="urgent",
            dedupe_key=f"desk:dial-transfer:{transfer.id}:{transfer.number_index}",
            transfer_id=transfer.id,
        )
        return
    transfer.status, transfer.ended_at = "failed", now
    desk_call = transfer.desk_call
    _transfer_event(session, desk_call, transfer, "call_transfer_failed", "system")
    if desk_call.status != CONNECTED:
        return
    if _operator_on_line(session, desk_call.id):
        _hold(session, desk_call, False, f"failed:{transfer.id}")
    else:
        requeue_caller(session, desk_call)


def requeue_caller(session: Session, desk_call: DeskCall) -> None:
    """Move a connected caller with nobody on the line back to the queue (by a job)."""
    desk_call.transferred_to = QUEUE_TARGET
    enqueue_after_commit(
        session,
        "desk_transfer_caller",
        queue="urgent",
        dedupe_key=f"desk:requeue:{desk_call.id}:{utcnow().timestamp()}",
        desk_call_id=desk_call.id,
    )


def cold_transfer_ended(
    session: Session, desk_call: DeskCall, *, answered: bool, now: datetime | None = None
) -> None:
    """A cold transfer was answered by an on-call number, or fell back to the queue."""
    now = now or utcnow()
    transfer = live_transfer(session, desk_call.id)
    if transfer is None or transfer.mode != "cold":
        return
    transfer.ended_at = now
    if answered or transfer.target == QUEUE_TARGET:
        transfer.status = "completed"
        desk_call.disposition = "transferred"
        _transfer_event(
            session, desk_call, transfer, "call_transferred", transfer.from_operator.email
        )
    else:
        transfer.status = "failed"
        _transfer_event(session, desk_call, transfer, "call_transfer_failed", "system")


def staff_left(
    session: Session,
    desk_call: DeskCall,
    *,
    target_of: DeskTransfer | None = None,
    now: datetime | None = None,
) -> None:
    """Someone on our side left the call's conference: the operator (`target_of=None`) or a warm
    transfer's target. The caller is handed over, taken back, requeued, or — with nobody left to
    talk to — hung up (by a job; every staff leg joins with endConferenceOnExit off)."""
    now = now or utcnow()
    if desk_call.status != CONNECTED:
        return
    if target_of is not None:
        if target_of.status == "consulting":  # the target hung up before taking the caller
            target_of.status, target_of.ended_at = "failed", now
            _transfer_event(session, desk_call, target_of, "call_transfer_failed", "system")
            if _operator_on_line(session, desk_call.id):
                _hold(session, desk_call, False, f"target-left:{target_of.id}")
                return
        elif target_of.status == "completed":
            target_of.ended_at = now
    else:
        transfer = live_transfer(session, desk_call.id)
        if transfer is not None and transfer.mode == "warm" and transfer.status == "consulting":
            hand_over(session, transfer, now)
            return
        if transfer is not None:
            return  # a target is being dialled (the caller holds), or a cold move is under way
    if _operator_on_line(session, desk_call.id) or _target_on_line(session, desk_call.id):
        return
    desk_call.status, desk_call.ended_at = "ended", now
    enqueue_after_commit(
        session,
        "desk_hangup_caller",
        queue="urgent",
        dedupe_key=f"desk:hangup:{desk_call.id}",
        desk_call_id=desk_call.id,
    )


def _target_on_line(session: Session, desk_call_id: int) -> bool:
    return (
        session.scalar(
            select(DeskTransfer.id).where(
                DeskTransfer.desk_call_id == desk_call_id,
                DeskTransfer.mode == "warm",
                or_(
                    DeskTransfer.status == "consulting",
                    and_(DeskTransfer.status == "completed", DeskTransfer.ended_at.is_(None)),
                ),
            )
        )
        is not None
    )


def _hold(session: Session, desk_call: DeskCall, hold: bool, key: str) -> None:
    enqueue_after_commit(
        session,
        "desk_hold_caller",
        queue="urgent",
        dedupe_key=f"desk:hold:{desk_call.id}:{key}:{hold}",
        desk_call_id=desk_call.id,
        hold=hold,
    )


# --- who is calling ---------------------------------------------------------------------------


def caller_facts(session: Session, desk_call: DeskCall) -> dict[str, Any]:
    """Resident, unit, language, open tickets and last contacts of the caller (or unknown)."""
    call = desk_call.call
    resident: Resident | None = (
        session.get(Resident, call.resident_id) if call.resident_id else None
    )
    if resident is None and call.from_number:
        point = session.scalar(
            select(ContactPoint).where(
                ContactPoint.kind == "phone", ContactPoint.value == call.from_number
            )
        )
        resident = point.resident if point is not None else None
    facts: dict[str, Any] = {
        "desk_call_id": desk_call.id,
        "call_sid": desk_call.call_sid,
        "phone": call.from_number,
        "language": desk_call.language,
        "status": desk_call.status,
        "entered_at": desk_call.entered_at.isoformat(),
        "ticket_id": desk_call.ticket_id,
        "resident": None,
        "unit": None,
        "open_tickets": [],
        "last_contacts": [],
    }
    if resident is None:
        return facts
    facts["resident"] = {"id": resident.id, "name": resident.name}
    if resident.unit is not None:
        facts["unit"] = f"{resident.unit.building.name} {resident.unit.label}"
    tickets = session.scalars(
        select(Ticket)
        .where(Ticket.resident_id == resident.id)
        .order_by(Ticket.created_at.desc())
        .limit(20)
    ).all()
    facts["open_tickets"] = [
        {"id": t.id, "ref": t.ref, "subject": t.subject, "status": t.status}
        for t in tickets
        if t.status in OPEN_STATUSES
    ]
    facts["last_contacts"] = [
        {"id": t.id, "ref": t.ref, "channel": t.channel, "created_at": t.created_at.isoformat()}
        for t in tickets[:5]
    ]
    return facts


# --- the wallboard ----------------------------------------------------------------------------


def _day_start(config: HotlineConfig, now: datetime) -> datetime:
    local = now.astimezone(config.timezone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def figures(session: Session, config: HotlineConfig, now: datetime | None = None) -> dict[str, Any]:
    """Today's desk figures in the centre's time zone.

    Service level = answered within the threshold / (answered + abandoned), short abandons (within
    `short_abandon_seconds`) left out of offered, abandoned and service level (Cisco's "abandoned
    call wait time"); every other abandon counts as a miss. ASA: queue wait of answered calls.
    AHT: talk + wrap-up of handled calls.
    """
    now = now or utcnow()
    settings = config.voice.desk
    start = _day_start(config, now)
    calls = session.scalars(select(DeskCall).where(DeskCall.entered_at >= start)).all()
    waiting = [c for c in calls if c.status == WAITING]
    states = {state: 0 for state in STATES}
    for row in operators_list(session, now):
        states[row["state"]] += 1
    return {
        "waiting": len(waiting),
        "longest_wait_seconds": max(
            (int((now - c.entered_at).total_seconds()) for c in waiting), default=0
        ),
        "operators": states,
        **call_figures(calls, settings),
    }


def call_figures(calls: Sequence[Any], settings: DeskSection) -> dict[str, Any]:
    """Offered, answered, abandoned, service level, ASA and AHT of these desk calls (rows with
    id, status, entered_at, answered_at, ended_at, talk_seconds, wrap_seconds), as `figures`
    defines them; the dashboard uses it per day."""
    answered = [c for c in calls if c.answered_at is not None]
    abandoned = [
        c
        for c in calls
        if c.status == "abandoned"
        and c.ended_at is not None
        and (c.ended_at - c.entered_at).total_seconds() >= settings.short_abandon_seconds
    ]
    abandoned_ids = {c.id for c in abandoned}
    short = [c for c in calls if c.status == "abandoned" and c.id not in abandoned_ids]
    within = [
        c
        for c in answered
        if c.answered_at is not None
        and (c.answered_at - c.entered_at).total_seconds() <= settings.service_level_seconds
    ]
    handled = [c for c in answered if c.talk_seconds is not None and c.status != CONNECTED]
    waits = [(c.answered_at - c.entered_at).total_seconds() for c in answered if c.answered_at]
    denominator = len(answered) + len(abandoned)
    return {
        "offered": len(calls) - len(short),
        "answered": len(answered),
        "abandoned": len(abandoned),
        "short_abandoned": len(short),
        "callbacks": sum(1 for c in calls if c.status in ("callback", "voicemail")),
        "service_level_seconds": settings.service_level_seconds,
        "service_level": round(100 * len(within) / denominator, 1) if denominator else None,
        "asa_seconds": round(sum(waits) / len(waits), 1) if waits else None,
        "aht_seconds": round(
            sum((c.talk_seconds or 0) + (c.wrap_seconds or 0) for c in handled) / len(handled), 1
        )
        if handled
        else None,
    }
