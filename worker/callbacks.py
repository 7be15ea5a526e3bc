"""Callback jobs: place a due callback, and drive the next step when its call ends.

The Callback row is the truth. `place_callback` claims it with a conditional UPDATE, writes the
attempt row (its idempotency key) and commits before dialling; `callback_call_ended` is idempotent
and ignores status reports about attempts that are no longer current.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from redis import Redis

from intake import clock
from intake.calendar import after_quiet_hours
from intake.callbacks import callback_preferred_span, next_allowed_time, retry_due_time
from intake.config import HotlineConfig
from intake.db import rowcount
from intake.models import Call, Callback, CallbackAttempt, ContactPoint, Ticket, utcnow
from intake.tickets import enqueue_after_commit, record_event
from worker.context import config, sessions, settings

log = logging.getLogger(__name__)

MACHINE_ANSWERS = (
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
)
RETRY_OUTCOMES = ("no_answer", "busy", "voicemail_left", "failed")
MAX_DIAL_ERRORS = 8
# A dialled call with no final status after this long has lost its status callback.
SILENT_AFTER = timedelta(minutes=20)


def _redis() -> Redis | None:
    from worker.queues import redis_connection

    try:
        return redis_connection()
    except RuntimeError:
        return None


def _earliest_virtual_hold(session: Session, now: datetime) -> int | None:
    """Virtual-hold callbacks are returned in the order the callers queued, not the order jobs run."""
    return session.scalar(
        select(Callback.id)
        .where(
            Callback.purpose == "virtual_hold",
            Callback.status == "scheduled",
            Callback.due_at <= now,
        )
        .order_by(func.coalesce(Callback.queued_at, Callback.created_at), Callback.id)
        .limit(1)
    )


def _claim_due(session: Session, callback_ids: list[int], now: datetime) -> list[int]:
    """The conditional UPDATE that makes placing a callback safe to run twice."""
    if not callback_ids:
        return []
    return list(
        session.scalars(
            update(Callback)
            .where(
                Callback.id.in_(callback_ids),
                Callback.status == "scheduled",
                Callback.due_at <= now + timedelta(seconds=1),
            )
            .values(
                status="in_progress", attempts=Callback.attempts + 1, outcome=None, updated_at=now
            )
            .returning(Callback.id)
            .execution_options(synchronize_session=False)
        )
    )


def _start_attempts(
    session: Session, callback_ids: list[int], started: datetime
) -> list[CallbackAttempt]:
    """One attempt row per claimed callback, numbered after its earlier attempts; its key is the
    idempotency key of the call."""
    previous: dict[int, int] = {
        callback_id: number
        for callback_id, number in session.execute(
            select(CallbackAttempt.callback_id, func.max(CallbackAttempt.attempt_no))
            .where(CallbackAttempt.callback_id.in_(callback_ids))
            .group_by(CallbackAttempt.callback_id)
        )
    }
    attempts = []
    for callback_id in callback_ids:
        number = (previous.get(callback_id) or 0) + 1
        attempts.append(
            CallbackAttempt(
                callback_id=callback_id,
                attempt_no=number,
                idempotency_key=f"cb{callback_id}-a{number}",
                status="placing",
                started_at=started,
            )
        )
    session.add_all(attempts)
    return attempts


def _claimed_callbacks(session: Session, callback_ids: list[int]) -> dict[int, Callback]:
    """The claimed rows as they are now (the UPDATE bypassed the identity map)."""
    return {
        cb.id: cb
        for cb in session.scalars(
            select(Callback)
            .where(Callback.id.in_(callback_ids))
            .execution_options(populate_existing=True)
        )
    }


def _open_attempt(session: Session, cb: Callback) -> CallbackAttempt | None:
    """An attempt that was written but whose call never got a sid (crash or lost response)."""
    return session.scalar(
        select(CallbackAttempt)
        .where(
            CallbackAttempt.callback_id == cb.id,
            CallbackAttempt.status == "placing",
            CallbackAttempt.call_sid.is_(None),
        )
        .order_by(CallbackAttempt.attempt_no.desc())
        .limit(1)
    )


def place_callback(callback_id: int, now: str | None = None) -> str:
    """Dial a due callback once. Safe to run twice; a second run finds nothing to claim."""
    moment = datetime.fromisoformat(now) if now else clock.now()
    cfg = config()
    with sessions()() as session:
        cb = session.get(Callback, callback_id)
        if cb is None:
            return "no such callback"
        if cb.status == "in_progress" and (pending := _open_attempt(session, cb)) is not None:
            return _dial_attempt(session, cb, pending, cfg, moment)
        if cb.purpose == "virtual_hold":
            callback_id = _earliest_virtual_hold(session, moment) or callback_id
        if cb.phone is None and cb.email and cb.purpose in ("follow_up", "survey"):
            return _follow_up_by_email(session, callback_id, moment)
        if not _claim_due(session, [callback_id], moment):
            session.rollback()
            current = session.get(Callback, callback_id)
            if current is not None and current.status == "scheduled":
                return "not due yet"
            return "already taken"
        cb = _claimed_callbacks(session, [callback_id])[callback_id]
        if not cb.phone:
            return _finish(session, cb, "failed", cfg, moment, note="no phone number to call")
        (attempt,) = _start_attempts(session, [callback_id], moment)
        # A lost REST response must find the claim and the attempt: both are committed first.
        session.commit()
        return _dial_attempt(session, cb, attempt, cfg, moment)


def place_callbacks(callback_ids: list[int], now: str | None = None) -> str:
    """Dial many due callbacks in one job (the relay's batch form of `place_callback`).

    Plain due callbacks are claimed and given their attempts together, then dialled one by one,
    each committed on its own; the others (a resumed attempt, virtual hold, email follow-up) take
    `place_callback`'s path. A failure of one does not stop the rest; the job then fails, so the
    reconciler runs it again and the rerun finds the placed ones already taken.
    """
    moment = datetime.fromisoformat(now) if now else clock.now()
    cfg = config()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    with sessions()() as session:
        plain = list(
            session.scalars(
                select(Callback.id).where(
                    Callback.id.in_(callback_ids),
                    Callback.status == "scheduled",
                    Callback.purpose != "virtual_hold",
                    Callback.phone.is_not(None),
                )
            )
        )
        taken = set(_claim_due(session, plain, moment))
        claimed = [callback_id for callback_id in callback_ids if callback_id in taken]
        attempts = _start_attempts(session, claimed, moment)
        session.commit()
        rows = _claimed_callbacks(session, claimed)
        # Twilio's calls are committed one by one (each REST request is a fact of its own); the
        # local dialer's call rows go in one transaction: if it fails, the rerun finds the
        # committed attempts without a call and places them then.
        one_by_one = settings().twilio_configured
        for attempt in attempts:
            try:
                result = _dial_attempt(
                    session, rows[attempt.callback_id], attempt, cfg, moment, commit=one_by_one
                )
                outcomes[result.split(" ", 1)[0]] += 1
            except Exception as exc:
                session.rollback()
                failures.append(f"callback {attempt.callback_id}: {exc}")
                if not one_by_one:
                    break
        session.commit()
    for callback_id in sorted(set(callback_ids) - set(claimed)):
        try:
            outcomes[place_callback(callback_id, now).split(" ", 1)[0]] += 1
        except Exception as exc:
            failures.append(f"callback {callback_id}: {exc}")
    summary = ", ".join(f"{count} {word}" for word, count in sorted(outcomes.items()))
    if failures:
        raise RuntimeError(f"{summary}; failed: {'; '.join(failures)}")
    return summary


def _dial_attempt(
    session: Session,
    cb: Callback,
    attempt: CallbackAttempt,
    cfg: HotlineConfig,
    moment: datetime,
    *,
    commit: bool = True,
) -> str:
    from voice.dialer import DialError, outbound_url, place_call, status_callback_url

    stg = settings()
    assert cb.phone
    try:
        sid = place_call(
            session,
            stg,
            attempt=attempt,
            to=cb.phone,
            url=outbound_url(stg, attempt),
            status_callback=status_callback_url(stg),
            connection=_redis() if stg.twilio_configured else None,
        )
    except DialError as exc:
        session.rollback()
        session.refresh(attempt)
        session.refresh(cb)
        if exc.lost:
            cb.last_error = str(exc)
            session.commit()
            raise
        attempt.status, attempt.error, attempt.ended_at = "error", str(exc), utcnow()
        cb.last_error = str(exc)
        if exc.permanent:
            attempt.outcome = exc.outcome
            session.flush()
            return _finish(session, cb, exc.outcome, cfg, moment, note=str(exc))
        errors = session.scalar(
            select(func.count())
            .select_from(CallbackAttempt)
            .where(CallbackAttempt.callback_id == cb.id, CallbackAttempt.status == "error")
        )
        if (errors or 0) >= MAX_DIAL_ERRORS:
            return _finish(session, cb, "failed", cfg, moment, note=f"gave up: {exc}")
        delay = max(exc.retry_after or 0, min(600, 5 * 2 ** (errors or 1)))
        cb.status, cb.attempts = "scheduled", max(0, cb.attempts - 1)
        # Backing off from Twilio's errors must not carry the call past closing or into the night.
        ticket = session.get(Ticket, cb.ticket_id)
        preferred = callback_preferred_span(session, ticket) if ticket is not None else None
        cb.due_at = next_allowed_time(moment + timedelta(seconds=delay), cfg, preferred)
        enqueue_after_commit(
            session,
            "place_callback",
            queue="urgent",
            dedupe_key=f"callback:{cb.id}:retry-after-error:{attempt.id}",
            available_at=cb.due_at,
            callback_id=cb.id,
        )
        session.commit()
        return f"dial failed, retrying at {cb.due_at.isoformat()}: {exc}"
    record_event(
        session,
        cb.ticket_id,
        "callback_dialled",
        f"attempt {attempt.attempt_no} of {cb.max_attempts} to {cb.phone}",
        actor="worker",
        callback_id=cb.id,
        attempt_id=attempt.id,
        call_sid=sid,
    )
    session.commit() if commit else session.flush()
    return f"dialled {sid}"


def outcome_for(call_status: str, answered_by: str | None) -> str:
    if call_status == "completed":
        return "voicemail_left" if answered_by in MACHINE_ANSWERS else "reached"
    return {"no-answer": "no_answer", "busy": "busy", "canceled": "failed", "failed": "failed"}.get(
        call_status, "failed"
    )


def callback_call_ended(attempt_id: int, call_status: str, answered_by: str | None = None) -> str:
    """The call of one attempt reached a terminal status: record it and take the next step."""
    cfg = config()
    now = clock.now()
    with sessions()() as session:
        attempt = session.get(CallbackAttempt, attempt_id)
        if attempt is None:
            return "no such attempt"
        outcome = outcome_for(call_status, answered_by)
        ended = rowcount(
            session.execute(
                update(CallbackAttempt)
                .where(CallbackAttempt.id == attempt_id, CallbackAttempt.status != "ended")
                .values(
                    status="ended",
                    outcome=func.coalesce(CallbackAttempt.outcome, outcome),
                    ended_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        )
        if not ended:
            session.rollback()
            return "already recorded"
        session.commit()
        session.refresh(attempt)
        cb = session.get(Callback, attempt.callback_id)
        assert cb is not None
        latest = session.scalar(
            select(func.max(CallbackAttempt.attempt_no)).where(CallbackAttempt.callback_id == cb.id)
        )
        if cb.status != "in_progress" or attempt.attempt_no != latest:
            return f"recorded {attempt.outcome} for a past attempt"
        outcome = attempt.outcome or outcome
        ticket = session.get(Ticket, cb.ticket_id)
        if ticket is not None:
            record_event(
                session,
                ticket,
                "callback_attempt",
                f"attempt {attempt.attempt_no}: {outcome}",
                actor="worker",
                callback_id=cb.id,
                attempt_id=attempt.id,
                outcome=outcome,
            )
        if outcome == "reached" or (outcome not in RETRY_OUTCOMES and outcome != "failed"):
            cb.status, cb.outcome = "done", cb.outcome or outcome
            session.commit()
            return f"callback {cb.id} done: {cb.outcome}"
        if outcome == "voicemail_left" and not cfg.callbacks.retry_after_voicemail:
            cb.status, cb.outcome = "done", outcome
            session.commit()
            return f"callback {cb.id} done: voicemail left"
        if cb.attempts >= cb.max_attempts:
            return _finish(session, cb, outcome, cfg, now)
        cb.status, cb.outcome = "scheduled", outcome
        cb.due_at = retry_due_time(session, cb, now, cfg)
        enqueue_after_commit(
            session,
            "place_callback",
            queue="urgent",
            dedupe_key=f"callback:{cb.id}:{cb.attempts + 1}",
            available_at=cb.due_at,
            callback_id=cb.id,
        )
        if ticket is not None:
            local = cb.due_at.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M")
            record_event(
                session,
                ticket,
                "callback_rescheduled",
                f"{outcome}; attempt {cb.attempts + 1} due {local}",
                callback_id=cb.id,
            )
        session.commit()
        return f"callback {cb.id} retry {cb.attempts + 1} at {cb.due_at.isoformat()}"


def _finish(
    session: Session,
    cb: Callback,
    outcome: str,
    cfg: HotlineConfig,
    now: datetime,
    *,
    note: str = "",
) -> str:
    """The last attempt failed: tell the resident in writing (never in quiet hours: a final status
    can arrive late) and hand the callback to an operator."""
    cb.status, cb.outcome = "needs_operator", outcome
    if note:
        cb.last_error = note
    ticket = session.get(Ticket, cb.ticket_id)
    if outcome == "wrong_number" and cb.phone:
        point = session.scalar(
            select(ContactPoint).where(ContactPoint.kind == "phone", ContactPoint.value == cb.phone)
        )
        if point is not None:
            point.unreachable, point.unreachable_reason = True, note or "wrong number"
    if ticket is not None:
        record_event(
            session,
            ticket,
            "callback_needs_operator",
            f"{cb.purpose} callback closed after {cb.attempts} attempt(s): {outcome}"
            + (f" ({note})" if note else ""),
            actor="worker",
            callback_id=cb.id,
            outcome=outcome,
        )
        enqueue_after_commit(
            session,
            "send_scripted_reply",
            dedupe_key=f"reply:callback_missed:{cb.id}",
            ticket_id=ticket.id,
            event="callback_missed",
            key=f"cb{cb.id}",
            avoid_phone=outcome == "wrong_number",
            available_at=after_quiet_hours(now, cfg),
            now=now,
        )
    session.commit()
    return f"callback {cb.id} needs an operator: {outcome}"


def _follow_up_by_email(session: Session, callback_id: int, now: datetime) -> str:
    """A resident reachable by email only gets the follow-up questions by email, one click each."""
    claimed = rowcount(
        session.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == "scheduled")
            .values(
                status="done", outcome="emailed", attempts=Callback.attempts + 1, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        session.rollback()
        return "already taken"
    cb = session.get(Callback, callback_id)
    assert cb is not None
    session.refresh(cb)
    enqueue_after_commit(
        session,
        "send_scripted_reply",
        dedupe_key=f"reply:survey:{cb.id}",
        ticket_id=cb.ticket_id,
        event="survey",
        key=f"cb{cb.id}",
        callback_id=cb.id,
        channel="email",
    )
    ticket = session.get(Ticket, cb.ticket_id)
    if ticket is not None:
        record_event(
            session,
            ticket,
            "follow_up_emailed",
            f"{cb.purpose} questions sent by email to {cb.email}",
            callback_id=cb.id,
        )
    session.commit()
    return f"callback {cb.id} sent by email"


def chase_silent_calls(now: str | None = None) -> str:
    """End the attempts whose call's final status never arrived (a status callback lost on the
    way), so that no callback stays "in progress" for ever: Twilio is asked for the call; a local
    call nobody picked up counts as no answer."""
    from voice.dialer import FINAL_STATUSES, fetch_call_status

    moment = datetime.fromisoformat(now) if now else clock.now()
    stg = settings()
    with sessions()() as session:
        silent = session.execute(
            select(CallbackAttempt.id, CallbackAttempt.call_sid, Call.status, Call.answered_by)
            .join(Callback, Callback.id == CallbackAttempt.callback_id)
            .outerjoin(Call, Call.call_sid == CallbackAttempt.call_sid)
            .where(
                CallbackAttempt.status == "dialled",
                CallbackAttempt.started_at < moment - SILENT_AFTER,
                Callback.status == "in_progress",
            )
            .order_by(CallbackAttempt.id)
            .limit(200)
        ).all()
    settled = 0
    for attempt_id, sid, known_status, answered_by in silent:
        final: tuple[str, str | None] | None = None
        if known_status in FINAL_STATUSES:
            final = (known_status, answered_by)
        elif stg.twilio_configured and sid:
            final = fetch_call_status(stg, sid)
        elif known_status not in ("in-progress", "answered"):
            final = ("no-answer", None)
        if final is None or final[0] not in FINAL_STATUSES:
            continue
        with sessions()() as session:
            session.execute(
                update(Call)
                .where(Call.call_sid == sid, Call.status.not_in(FINAL_STATUSES))
                .values(status=final[0], answered_by=final[1], ended_at=utcnow())
            )
            session.commit()
        log.warning("call %s: its final status never arrived; settled as %s", sid, final[0])
        callback_call_ended(attempt_id, final[0], final[1])
        settled += 1
    return f"{settled} silent call(s) settled"
