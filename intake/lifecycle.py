"""The ticket's lifecycle: every status change, from every surface, and what each one owes.

    new → routed → in_progress ⇄ waiting_resident → resolved → closed
    resolved / closed → routed (same department) or new (none yet): reopened

The console, the JSON API, department staff, the phone follow-up and survey, the email links, the
resident's own replies and the routing job all change a ticket's status here and nowhere else, so
a transition's side effects (the resident's message, the follow-up (回訪), cancelled callbacks,
the department's notification, closing after a quiet period) are defined once.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.callbacks import OPEN_CALLBACK_STATUSES, schedule_callback
from intake.clock import utcnow
from intake.config import HotlineConfig
from intake.constants import OPEN_STATUSES, STATUSES
from intake.models import Callback, Event, Outbox, Ticket
from intake.signed_links import link_mac
from intake.tickets import enqueue_after_commit, job_row, record_event

# Which status may follow which. Reaching `new` again is only a reopening without a department.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"routed", "in_progress", "waiting_resident", "resolved", "closed"}),
    "routed": frozenset({"in_progress", "waiting_resident", "resolved", "closed"}),
    "in_progress": frozenset({"routed", "waiting_resident", "resolved", "closed"}),
    "waiting_resident": frozenset({"routed", "in_progress", "resolved", "closed"}),
    "resolved": frozenset({"closed", "routed", "in_progress", "new"}),
    "closed": frozenset({"routed", "in_progress", "new"}),
}
# Callbacks an operator promised the resident: resolving asks the operator instead of cancelling.
OPERATOR_PURPOSES = ("operator_request",)
FOLLOW_UP_ANSWERS = ("fixed", "not_fixed")
SURVEY_SCORES = ("1", "2", "3", "4", "5")
LINK_ANSWERS = FOLLOW_UP_ANSWERS + SURVEY_SCORES


class TransitionRefused(ValueError):
    """A change the lifecycle does not allow; `code` is stable, `message` says why in English
    (the console shows its own translation of the code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Resolution:
    follow_up: Callback | None = None
    cancelled: list[Callback] = field(default_factory=list)
    kept: list[Callback] = field(default_factory=list)


def check(ticket: Ticket, status: str) -> None:
    """Raise `TransitionRefused` unless `ticket` may go to `status` now."""
    if status not in STATUSES:
        raise TransitionRefused("unknown_status", f"unknown status {status!r}")
    if status not in TRANSITIONS[ticket.status]:
        raise TransitionRefused("not_allowed", f"a {ticket.status} ticket cannot become {status}")
    if status == "routed" and ticket.department_id is None and ticket.department is None:
        raise TransitionRefused("needs_department", "choose a department before routing")


def _move(
    session: Session, ticket: Ticket, status: str, *, actor: str, note: str, now: datetime
) -> None:
    previous = ticket.status
    ticket.status = status
    ticket.updated_at = now
    if status == "resolved":
        ticket.resolved_at = now
    elif status == "closed":
        ticket.closed_at = now
    elif previous in ("resolved", "closed"):
        ticket.resolved_at = None
        ticket.closed_at = None
    record_event(
        session,
        ticket,
        "status_changed",
        note or f"{previous} → {status}",
        actor=actor,
        now=now,
        previous=previous,
        status=status,
    )


def _occurrence(session: Session, ticket: Ticket, kind: str, **data: str) -> str:
    """How many times this ticket has had this event: the next one's name, so each resolution,
    reopening or question owes its message once, however quickly they follow each other."""
    query = (
        select(func.count())
        .select_from(Event)
        .where(Event.ticket_id == ticket.id, Event.kind == kind)
    )
    for key, value in data.items():
        query = query.where(Event.data[key].as_string() == value)
    session.flush()
    return str(session.scalar(query) or 0)


def owe_reply(
    session: Session, ticket: Ticket, event: str, *, key: str, now: datetime, **args: Any
) -> None:
    """The resident's scripted message for `event`, once per `key` (the worker picks the channel,
    the language and a moment outside quiet hours)."""
    enqueue_after_commit(
        session,
        "send_scripted_reply",
        dedupe_key=f"reply:{event}:{ticket.id}:{key}",
        now=now,
        ticket_id=ticket.id,
        event=event,
        key=key,
        **args,
    )


def change(
    session: Session,
    ticket: Ticket,
    status: str,
    *,
    actor: str,
    config: HotlineConfig,
    note: str = "",
    now: datetime | None = None,
) -> bool:
    """A status picked by a person (console, API): the matching transition with its side effects.
    False when the ticket already has that status."""
    now = now or utcnow()
    if status == ticket.status:
        return False
    if status == "resolved":
        resolve(session, ticket, note, actor=actor, config=config, now=now)
    elif ticket.status in ("resolved", "closed") and status in OPEN_STATUSES:
        reopen(session, ticket, actor=actor, reason="operator", note=note, now=now, to=status)
    elif status == "closed":
        close(session, ticket, actor=actor, note=note, now=now)
    elif status == "waiting_resident":
        ask_resident(session, ticket, note, actor=actor, now=now)
    else:
        check(ticket, status)
        _move(session, ticket, status, actor=actor, note=note, now=now)
    return True


def route_by_hand(
    session: Session, ticket: Ticket, *, actor: str, now: datetime | None = None
) -> None:
    """A person gave a new ticket its department: routed, with what routing owes."""
    now = now or utcnow()
    check(ticket, "routed")
    _move(session, ticket, "routed", actor=actor, note="", now=now)
    session.add_all(Outbox(**row) for row in routed_jobs(ticket.id, ticket.priority, now))


def start_work(
    session: Session, ticket: Ticket, *, actor: str, now: datetime | None = None
) -> None:
    """Someone took the ticket or answered the resident: new/routed become in progress."""
    if ticket.status in ("new", "routed"):
        _move(session, ticket, "in_progress", actor=actor, note="", now=now or utcnow())


def ask_resident(
    session: Session, ticket: Ticket, note: str, *, actor: str, now: datetime | None = None
) -> None:
    """We need more information: waiting for the resident, who is asked (need_more_info)."""
    now = now or utcnow()
    check(ticket, "waiting_resident")
    _move(session, ticket, "waiting_resident", actor=actor, note=note, now=now)
    asked = _occurrence(session, ticket, "status_changed", status="waiting_resident")
    owe_reply(session, ticket, "need_more_info", key=asked, now=now, note=note)


def resolve(
    session: Session,
    ticket: Ticket,
    note: str,
    *,
    actor: str,
    config: HotlineConfig,
    now: datetime | None = None,
    public_note: str | None = None,
) -> Resolution:
    """Resolved: the resident is told, their other calls owed are settled, and a follow-up (回訪)
    is owed in the next allowed window after `callbacks.follow_up_delay_hours`.

    `note` is the internal resolution note (staff only); `public_note`, when given, is the answer
    the resident is told in the resolved message and that Open311 publishes."""
    now = now or utcnow()
    note = (note or "").strip()
    if not note:
        raise TransitionRefused("needs_note", "a resolution note is required")
    check(ticket, "resolved")
    _move(session, ticket, "resolved", actor=actor, note=f"resolved: {note[:200]}", now=now)
    ticket.resolution_note = note
    public = (public_note or "").strip()
    if public:
        ticket.public_note = public
    resolution = _occurrence(session, ticket, "status_changed", status="resolved")
    if public:
        owe_reply(session, ticket, "resolved", key=resolution, now=now, note=public)
    else:
        owe_reply(session, ticket, "resolved", key=resolution, now=now)
    result = Resolution()
    for callback in ticket.callbacks:
        if callback.status not in (*OPEN_CALLBACK_STATUSES, "needs_operator"):
            continue
        if callback.purpose in OPERATOR_PURPOSES:
            result.kept.append(callback)
            continue
        callback.status, callback.outcome, callback.updated_at = "cancelled", "resolved", now
        record_event(
            session,
            ticket,
            "callback_cancelled",
            f"{callback.purpose} callback cancelled: the ticket is resolved",
            actor=actor,
            now=now,
            callback_id=callback.id,
        )
        result.cancelled.append(callback)
    if ticket.contact_phone or ticket.contact_email:
        delay = timedelta(hours=config.callbacks.follow_up_delay_hours)
        result.follow_up = schedule_callback(
            session,
            ticket,
            phone=ticket.contact_phone,
            email=None if ticket.contact_phone else ticket.contact_email,
            purpose="follow_up",
            config=config,
            now=now,
            not_before=now + delay,
            actor=actor,
        )
    quiet_days = timedelta(days=config.callbacks.close_after_days)
    follow_up_due = result.follow_up.due_at if result.follow_up else now
    _owe_closing(session, ticket, follow_up_due + quiet_days, cause="resolved", now=now)
    return result


def _owe_closing(
    session: Session, ticket: Ticket, at: datetime, *, cause: str, now: datetime
) -> None:
    """Close this resolution after a quiet period unless the resident objects (reopens) first;
    one closing per resolution and `cause` (resolved, fixed)."""
    assert ticket.resolved_at is not None
    resolved = ticket.resolved_at.isoformat()
    enqueue_after_commit(
        session,
        "close_if_quiet",
        queue="low",
        dedupe_key=f"close:{ticket.id}:{ticket.resolved_at.timestamp()}:{cause}",
        available_at=at,
        now=now,
        ticket_id=ticket.id,
        resolved_at=resolved,
    )


def close_if_quiet(
    session: Session, ticket: Ticket, resolved_at: datetime, *, now: datetime | None = None
) -> bool:
    """The quiet period after a resolution ended: closed, unless it was reopened since."""
    now = now or utcnow()
    if ticket.status != "resolved" or ticket.resolved_at != resolved_at:
        return False
    _move(session, ticket, "closed", actor="system", note="closed: no objection", now=now)
    return True


def close(
    session: Session, ticket: Ticket, *, actor: str, note: str = "", now: datetime | None = None
) -> None:
    """Closed by a person (a duplicate merged, spam, resolved and confirmed): nothing more owed."""
    now = now or utcnow()
    check(ticket, "closed")
    _move(session, ticket, "closed", actor=actor, note=note, now=now)
    for callback in ticket.callbacks:
        if callback.status in OPEN_CALLBACK_STATUSES and callback.purpose not in OPERATOR_PURPOSES:
            callback.status, callback.outcome, callback.updated_at = "cancelled", "closed", now


def reopen(
    session: Session,
    ticket: Ticket,
    *,
    actor: str,
    reason: str,
    note: str = "",
    now: datetime | None = None,
    to: str | None = None,
    dedupe: str | None = None,
) -> bool:
    """Back to work: to the same department (routed) or, without one, to the queue (new). The
    department is told at once; `dedupe` names the cause so one cause notifies once."""
    now = now or utcnow()
    if ticket.status not in ("resolved", "closed"):
        return False
    has_department = ticket.department_id is not None or ticket.department is not None
    target = to or ("routed" if has_department else "new")
    if target == "routed" and not has_department:
        target = "new"
    check(ticket, target)
    _move(session, ticket, target, actor=actor, note=note or f"reopened: {reason}", now=now)
    record_event(session, ticket, "reopened", note or reason, actor=actor, now=now, reason=reason)
    enqueue_after_commit(  # without a department, the customer service centre is told
        session,
        "notify_department",
        queue="urgent",
        dedupe_key=f"notify:{reason}:{ticket.id}:{dedupe or _occurrence(session, ticket, 'reopened')}",
        now=now,
        ticket_id=ticket.id,
        reason="not_fixed" if reason == "not_fixed" else "reopened",
    )
    return True


def resident_wrote(
    session: Session, ticket: Ticket, *, kind: str, now: datetime | None = None
) -> bool:
    """A message from the resident on their ticket: a closed matter is reopened, a question we
    asked is answered. True if it reopened the ticket."""
    now = now or utcnow()
    if ticket.status in ("resolved", "closed"):
        return reopen(
            session,
            ticket,
            actor="resident",
            reason="resident_wrote",
            note=f"reopened by the resident's {kind}",
            now=now,
            to="in_progress" if ticket.department_id else "new",
        )
    if ticket.status == "waiting_resident":
        _move(
            session, ticket, "in_progress", actor="resident", note="the resident answered", now=now
        )
    return False


def routed_jobs(ticket_id: int, priority: str, now: datetime) -> list[dict[str, Any]]:
    """What routing a new ticket owes, as outbox rows the routing job writes with its claim:
    the department's notification and the resident's "routed" message."""
    return [
        job_row(
            "notify_department",
            queue="urgent" if priority in ("P1", "P2") else "default",
            dedupe_key=f"notify:routed:{ticket_id}",
            now=now,
            ticket_id=ticket_id,
            reason="routed",
        ),
        job_row(
            "send_scripted_reply",
            dedupe_key=f"reply:routed:{ticket_id}:",
            now=now,
            ticket_id=ticket_id,
            event="routed",
            key="",
        ),
    ]


# --- the follow-up (回訪) and the satisfaction survey ---------------------------------------------


def follow_up_answered(callback: Callback) -> bool:
    return callback.outcome in FOLLOW_UP_ANSWERS


def survey_answered(session: Session, callback: Callback) -> bool:
    return (
        session.scalar(
            select(Event.id)
            .where(
                Event.ticket_id == callback.ticket_id,
                Event.kind == "survey_answered",
                Event.data["callback_id"].as_integer() == callback.id,
            )
            .limit(1)
        )
        is not None
    )


def survey_wanted(config: HotlineConfig) -> bool:
    return config.callbacks.survey


def answer_follow_up(
    session: Session,
    callback: Callback,
    answer: str,
    *,
    actor: str,
    config: HotlineConfig,
    now: datetime | None = None,
) -> str:
    """The resident's answer to "is it fixed?", once per follow-up: "fixed" (closed after a quiet
    period), "reopened", or "already_answered" (nothing changes)."""
    now = now or utcnow()
    if answer not in FOLLOW_UP_ANSWERS:
        raise ValueError(f"unknown answer {answer!r}")
    if follow_up_answered(callback):
        return "already_answered"
    ticket = callback.ticket
    callback.outcome, callback.status, callback.updated_at = answer, "done", now
    if answer == "not_fixed":
        record_event(
            session,
            ticket,
            "follow_up_not_fixed",
            "the resident says it is not fixed",
            actor=actor,
            now=now,
            callback_id=callback.id,
        )
        reopen(
            session,
            ticket,
            actor=actor,
            reason="not_fixed",
            note="reopened: the resident says it is not fixed",
            now=now,
            dedupe=f"cb{callback.id}",
        )
        return "reopened"
    record_event(
        session,
        ticket,
        "follow_up_fixed",
        "the resident confirms it is fixed",
        actor=actor,
        now=now,
        callback_id=callback.id,
    )
    if ticket.status == "resolved":
        quiet = timedelta(days=config.callbacks.close_after_days)
        _owe_closing(session, ticket, now + quiet, cause="fixed", now=now)
    return "fixed"


def answer_survey(
    session: Session,
    callback: Callback,
    score: int,
    *,
    actor: str,
    now: datetime | None = None,
    on_the_call: bool = False,
) -> bool:
    """A satisfaction score 1–5 for this follow-up, once; False when it was already given.
    `on_the_call`: keyed or said on the survey call itself, which ends that callback (reached)."""
    if not 1 <= score <= 5:
        raise ValueError(f"a score is 1 to 5, not {score}")
    if on_the_call and callback.status != "done":
        callback.status, callback.outcome = "done", callback.outcome or "reached"
    if survey_answered(session, callback):
        return False
    ticket = callback.ticket
    ticket.satisfaction = score
    record_event(
        session,
        ticket,
        "survey_answered",
        f"satisfaction {score}/5",
        actor=actor,
        now=now or utcnow(),
        score=score,
        callback_id=callback.id,
    )
    return True


_SPOKEN_SCORES = {
    "一": 1, "壹": 1, "one": 1,
    "二": 2, "兩": 2, "两": 2, "贰": 2, "貳": 2, "two": 2,
    "三": 3, "叁": 3, "參": 3, "three": 3,
    "四": 4, "肆": 4, "four": 4,
    "五": 5, "伍": 5, "five": 5, "滿分": 5, "满分": 5,
}  # fmt: skip
_SCORE_WORD = re.compile(
    "|".join(sorted((re.escape(w) for w in _SPOKEN_SCORES), key=len, reverse=True)) + r"|[1-5]",
    re.IGNORECASE,
)


def survey_score(words: str) -> int | None:
    """A score said aloud or typed: "5", "五分", "五", "five", "給五分吧"; None if none or several."""
    found = {
        int(m) if m.isdigit() else _SPOKEN_SCORES[m.lower()]
        for m in _SCORE_WORD.findall(words or "")
    }
    return found.pop() if len(found) == 1 else None


def link_expired(callback: Callback, config: HotlineConfig, now: datetime | None = None) -> bool:
    """Email answer links work for `callbacks.follow_up_link_days` (14) after the questions went."""
    days = timedelta(days=config.callbacks.follow_up_link_days)
    return (now or utcnow()) > callback.due_at + days


def follow_up_token(secret: str, callback_id: int, answer: str) -> str:
    """A link token that can only say `answer` about `callback_id` (no login needed, cannot be forged)."""
    payload = f"{callback_id}.{answer}"
    return f"{payload}.{link_mac(secret, payload)}"


def read_follow_up_token(secret: str, token: str) -> tuple[int, str] | None:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in LINK_ANSWERS:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(link_mac(secret, payload), parts[2]):
        return None
    return int(parts[0]), parts[1]


def link_state(
    session: Session,
    callback: Callback,
    answer: str,
    config: HotlineConfig,
    now: datetime | None = None,
) -> str:
    """ "open", "expired" or "already_answered": what a click on this link may still do."""
    if link_expired(callback, config, now):
        return "expired"
    answered = (
        follow_up_answered(callback)
        if answer in FOLLOW_UP_ANSWERS
        else survey_answered(session, callback)
    )
    return "already_answered" if answered else "open"


def answer_link(
    session: Session,
    callback: Callback,
    answer: str,
    *,
    actor: str,
    config: HotlineConfig,
    now: datetime | None = None,
) -> str:
    """One click in the follow-up email: "expired", "already_answered", "fixed", "reopened" or
    "scored"."""
    now = now or utcnow()
    state = link_state(session, callback, answer, config, now)
    if state != "open":
        return state
    if answer in FOLLOW_UP_ANSWERS:
        return answer_follow_up(session, callback, answer, actor=actor, config=config, now=now)
    if not answer_survey(session, callback, int(answer), actor=actor, now=now):
        return "already_answered"
    return "scored"
