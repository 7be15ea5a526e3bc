"""What a call leaves behind: its Call row, its ticket, its recordings, its missed-call callback.

Every step is idempotent: the Call row by CallSid, the ticket by (voice, CallSid) through
`intake.service.receive`, a recording by RecordingSid. `receive` runs in its own transaction, so
callers end their own session's transaction before calling these (SQLite takes the write lock at BEGIN).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.callbacks import OPEN_CALLBACK_STATUSES, schedule_callback
from intake.config import HotlineConfig
from intake.constants import WRITTEN_LANGUAGE
from intake.contact import InboundAttachment, InboundContact
from intake.models import (
    Attachment,
    Call,
    Callback,
    CallbackAttempt,
    ContactPoint,
    Interaction,
    Resident,
    Ticket,
    Unit,
    utcnow,
)
from intake.phones import normalize_phone
from intake.phrases import render
from intake.service import Receipt, receive
from intake.tickets import enqueue_after_commit
from voice.dialer import FINAL_STATUSES
from voice.languages import remembered_language

MAX_SPEECH_CHARS = 4000
TOPIC_CATEGORIES = {
    "repair": "repair",
    "complaint": "complaint",
    "inquiry": "inquiry",
    "emergency": "emergency",
    "after_hours": None,
    "voicemail": None,
    "operator": None,
}
# The callback a recorded message is owed, by the topic it was recorded under.
VOICEMAIL_CALLBACKS = {"after_hours": "after_hours", "voicemail": "voicemail"}
STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}


_RESIDENT_BY_PHONE = (
    select(
        Resident.id,
        Resident.name,
        Resident.spoken_language,
        Resident.language,
        Unit.building_id,
        Unit.label.label("unit_label"),
    )
    .join(ContactPoint, ContactPoint.resident_id == Resident.id)
    .outerjoin(Unit, Unit.id == Resident.unit_id)
    .where(ContactPoint.kind == "phone", ContactPoint.value == bindparam("phone"))
    .limit(1)
)
_INSERT_CALL = insert(Call).returning(Call.id)


def ensure_call(
    sessions: sessionmaker[Session], params: Any, config: HotlineConfig, *, greet: bool = False
) -> Call:
    """The Call row for this CallSid, created on first sight (a retried webhook finds it).

    With `greet` (the incoming-call webhook) the row is born greeted and, for a known resident,
    with their remembered language. A new call costs one lookup and one insert in one transaction:
    this is the hot path of every call.
    """
    sid = params["CallSid"]
    phone = normalize_phone(params.get("From"), config.phone_region)
    with sessions() as session:
        if not greet:
            call = session.scalar(select(Call).where(Call.call_sid == sid))
            if call is not None:
                return call
        resident = session.execute(_RESIDENT_BY_PHONE, {"phone": phone}).first() if phone else None
        known = (
            remembered_language(config, resident.spoken_language, resident.language, phone)
            if greet and resident is not None
            else None
        )
        values: dict[str, Any] = {
            "call_sid": sid,
            "parent_call_sid": params.get("ParentCallSid") or None,
            "direction": (params.get("Direction") or "inbound")[:20],
            "from_number": phone or (params.get("From") or "")[:32] or None,
            "to_number": (params.get("To") or "")[:32] or None,
            "status": (params.get("CallStatus") or "ringing")[:20],
            "status_sequence": -1,
            "resident_id": resident.id if resident else None,
            "language": known.key if known else None,
            "greeted": greet,
            "filed": False,
            "ivr_path": ["greeted"] if greet else [],
            "meta": _resident_meta(resident),
            "started_at": utcnow(),
        }
        try:
            call_id = session.execute(_INSERT_CALL, values).scalar_one()
            session.commit()
        except IntegrityError:
            session.rollback()
            call = session.scalar(select(Call).where(Call.call_sid == sid))
            assert call is not None
            return call
    return Call(id=call_id, **values)


def _resident_meta(resident: Any) -> dict[str, Any]:
    """What the call's webhooks need of a known resident: the name they are greeted by and the
    script they are written to (a Cantonese speaker reads zh-Hant unless they set otherwise)."""
    if resident is None:
        return {}
    meta: dict[str, Any] = {}
    if resident.name:
        meta["resident_name"] = resident.name
    if resident.language:
        meta["resident_written"] = resident.language
    if resident.building_id is not None:
        # Where they live, so an incident over their building costs the IVR no query.
        meta["home"] = [resident.building_id, resident.unit_label]
    return meta


def written_language(call: Call) -> str | None:
    """The script a call's ticket is written in: the known resident's, else the one of the
    variety they spoke (zh-Hant for Cantonese)."""
    return (call.meta or {}).get("resident_written") or WRITTEN_LANGUAGE.get(call.language or "")


def record_step(sessions: sessionmaker[Session], call_id: int, step: str, **changes: Any) -> None:
    """Append to the call's IVR path and set fields, in one short transaction."""
    with sessions() as session:
        call = session.get(Call, call_id)
        if call is None:
            return
        call.ivr_path = [*call.ivr_path, step][-50:]
        for key, value in changes.items():
            setattr(call, key, value)
        session.commit()


def file_ticket(
    sessions: sessionmaker[Session],
    call: Call,
    config: HotlineConfig,
    *,
    text: str,
    topic: str,
    kind: str = "call",
    priority_hint: str | None = None,
    now: datetime | None = None,
) -> Receipt:
    """The call's ticket (one per CallSid), filed as soon as there is something to file."""
    contact = InboundContact(
        channel="voice",
        external_id=call.call_sid,
        kind=kind,
        sender_phone=call.from_number,
        recipient=call.to_number,
        text=text[:MAX_SPEECH_CHARS],
        language_hint=written_language(call),
        ivr_selections=tuple(str(s) for s in call.ivr_path),
        category_hint=TOPIC_CATEGORIES.get(topic),
        priority_hint=priority_hint,
        meta={"call_sid": call.call_sid, "spoken_language": call.language, "topic": topic},
    )
    receipt = receive(sessions, contact, config, now=now)
    if receipt.duplicate and _filed_kind(sessions, call) == "missed_call":
        # The call's final status came first (or at the same moment) and filed the hang-up as a
        # missed call under this CallSid: the words join that ticket rather than being dropped.
        call.ticket_id = receipt.ticket_id
        _add_late_words(sessions, call, config, text=contact.text, now=now)
    with sessions() as session:
        row = session.get(Call, call.id)
        if row is not None and (not row.filed or row.ticket_id != receipt.ticket_id):
            row.filed = True
            row.ticket_id = receipt.ticket_id
            session.commit()
    call.filed, call.ticket_id = True, receipt.ticket_id
    return receipt


def _filed_kind(sessions: sessionmaker[Session], call: Call) -> str | None:
    """What the call was filed as (its own interaction's kind), if it was."""
    with sessions() as session:
        return session.scalar(
            select(Interaction.kind).where(
                Interaction.channel == "voice", Interaction.external_id == call.call_sid
            )
        )


def _ticket_ref_of(sessions: sessionmaker[Session], call: Call) -> str | None:
    if call.ticket_id is None:
        return None
    with sessions() as session:
        ref = session.scalar(select(Ticket.ref).where(Ticket.id == call.ticket_id))
    assert ref is not None
    return ref


def _add_late_words(
    sessions: sessionmaker[Session],
    call: Call,
    config: HotlineConfig,
    *,
    text: str,
    now: datetime | None = None,
) -> Receipt | None:
    """What the caller said, after the call was filed as a missed call: an interaction on that
    ticket, once per call."""
    ref = _ticket_ref_of(sessions, call)
    if ref is None:
        return None
    contact = InboundContact(
        channel="voice",
        external_id=f"{call.call_sid}:words",
        kind="call",
        sender_phone=call.from_number,
        recipient=call.to_number,
        text=text[:MAX_SPEECH_CHARS],
        language_hint=written_language(call),
        ivr_selections=tuple(str(s) for s in call.ivr_path),
        ticket_ref=ref,
        ticket_ref_trusted=True,
        meta={"call_sid": call.call_sid, "spoken_language": call.language, "late": True},
    )
    return receive(sessions, contact, config, now=now)


def attach_recording(
    sessions: sessionmaker[Session],
    call: Call,
    config: HotlineConfig,
    *,
    recording_sid: str,
    recording_url: str | None,
    duration: int | None,
    fetch: bool,
    kind: str = "voicemail",
) -> Attachment | None:
    """The recording as an interaction + attachment on the call's ticket, once per RecordingSid
    (`kind`: a voicemail, or a desk call's recording)."""
    ref = _ticket_ref_of(sessions, call)
    if ref is None:
        return None
    contact = InboundContact(
        channel="voice",
        external_id=recording_sid,
        kind=kind,
        sender_phone=call.from_number,
        text="",
        ticket_ref=ref,
        ticket_ref_trusted=True,
        attachments=(
            InboundAttachment(
                filename=f"{recording_sid}.wav",
                content_type="audio/wav",
                size=0,
                external_url=recording_url,
                external_id=recording_sid,
            ),
        ),
        meta={
            "call_sid": call.call_sid,
            "duration_seconds": duration,
            "recording_url": recording_url,
        },
    )
    receive(sessions, contact, config)
    with sessions() as session:
        attachment = session.scalar(
            select(Attachment).where(Attachment.external_id == recording_sid)
        )
        if attachment is not None and fetch and attachment.sha256 is None:
            try:
                enqueue_after_commit(
                    session,
                    "fetch_recording",
                    queue="low",
                    dedupe_key=f"fetchrec:{recording_sid}",
                    attachment_id=attachment.id,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
        return attachment


def owe_callback(
    sessions: sessionmaker[Session],
    call: Call,
    config: HotlineConfig,
    purpose: str,
    *,
    queued_at: datetime | None = None,
    now: datetime | None = None,
) -> int | None:
    """One callback of `purpose` for the call's ticket (a repeated request finds the first).

    Race-proof: concurrent webhooks of one call (the recording action and the final status) may
    both find none; the partial unique index `uq_callback_open_owed` lets one insert win, and the
    loser reads the winner's row."""
    if call.ticket_id is None or not call.from_number or not call.from_number.startswith("+"):
        return None
    first = select(Callback.id).where(
        Callback.ticket_id == call.ticket_id, Callback.purpose == purpose
    )
    for _ in range(3):
        with sessions() as session:
            existing = session.scalar(first.order_by(Callback.id).limit(1))
            if existing is not None:
                return existing
            ticket = session.get(Ticket, call.ticket_id)
            assert ticket is not None
            try:
                callback = schedule_callback(
                    session,
                    ticket,
                    phone=call.from_number,
                    purpose=purpose,
                    config=config,
                    now=now,
                    queued_at=queued_at,
                )
                session.commit()
                return callback.id
            except IntegrityError:
                session.rollback()  # another request owed it first: read theirs
    raise RuntimeError(f"could not owe a {purpose} callback for ticket {call.ticket_id}")


def open_missed_call_ticket(
    session: Session, phone: str, config: HotlineConfig, now: datetime
) -> str | None:
    """The ticket of an open missed-call callback for this number within the window, if any."""
    window = timedelta(minutes=config.callbacks.missed_call_window_minutes)
    return session.scalar(
        select(Ticket.ref)
        .join(Callback, Callback.ticket_id == Ticket.id)
        .where(
            Callback.phone == phone,
            Callback.purpose == "missed_call",
            Callback.status.in_(OPEN_CALLBACK_STATUSES),
            Callback.created_at >= now - window,
        )
        .order_by(Callback.id)
        .limit(1)
    )


def file_missed_call(
    sessions: sessionmaker[Session], call: Call, config: HotlineConfig, now: datetime | None = None
) -> Receipt | None:
    """A caller hung up in the menu before anything was filed: a ticket and a callback, one per window."""
    phone = call.from_number
    if not phone or not phone.startswith("+"):
        return None
    now = now or utcnow()
    with sessions() as session:
        earlier = open_missed_call_ticket(session, phone, config, now)
    language = written_language(call) or config.default_language
    contact = InboundContact(
        channel="voice",
        external_id=call.call_sid,
        kind="missed_call",
        sender_phone=phone,
        recipient=call.to_number,
        subject=render("voice_missed_call_subject", language, phone=phone),
        text=render(
            "voice_missed_call_text",
            language,
            phone=phone,
            path=" > ".join(map(str, call.ivr_path)),
        ),
        language_hint=language,
        category_hint="other",
        ivr_selections=tuple(str(s) for s in call.ivr_path),
        ticket_ref=earlier,
        ticket_ref_trusted=earlier is not None,
        meta={"call_sid": call.call_sid, "spoken_language": call.language, "abandoned": True},
    )
    receipt = receive(sessions, contact, config, now=now)
    call.ticket_id = receipt.ticket_id
    if receipt.duplicate and _filed_kind(sessions, call) != "missed_call":
        return receipt  # what the caller said was filed meanwhile: not a missed call after all
    with sessions() as session:
        row = session.get(Call, call.id)
        if row is not None:
            row.ticket_id, row.filed = receipt.ticket_id, True
        ticket = session.get(Ticket, receipt.ticket_id)
        assert ticket is not None
        already = receipt.duplicate and session.scalar(
            select(Callback.id).where(
                Callback.ticket_id == ticket.id, Callback.purpose == "missed_call"
            )
        )
        if not already:
            schedule_callback(
                session, ticket, phone=phone, purpose="missed_call", config=config, now=now
            )
        session.commit()
    return receipt


def apply_status(
    session: Session,
    call: Call,
    status: str,
    sequence: int,
    *,
    answered_by: str = "",
    duration: str = "",
) -> None:
    """A status callback on the locked Call row: monotonic (a terminal status is final, a late
    `ringing` never moves a call backwards); the end of a callback attempt's call is reported."""
    if call.status in FINAL_STATUSES:
        return
    new_rank = 4 if status in FINAL_STATUSES else STATUS_RANK.get(status, 0)
    if new_rank < STATUS_RANK.get(call.status, 0):
        return
    call.status = status
    call.status_sequence = max(call.status_sequence, sequence)
    if answered_by:
        call.answered_by = answered_by
    if status not in FINAL_STATUSES:
        return
    call.ended_at = utcnow()
    if duration.isdigit():
        call.duration_seconds = int(duration)
    attempt = session.scalar(
        select(CallbackAttempt).where(CallbackAttempt.call_sid == call.call_sid)
    )
    if attempt is not None:
        enqueue_after_commit(
            session,
            "callback_call_ended",
            dedupe_key=f"callend:{call.call_sid}",
            attempt_id=attempt.id,
            call_status=status,
            answered_by=call.answered_by,
        )
