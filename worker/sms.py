"""Sending an SMS that was written to the outgoing messages (Twilio Messaging when configured).

A row is claimed `queued → sending` once with a conditional UPDATE (a `sending` claim older than
`SENDING_LEASE`, left by a killed worker, may be taken again; `sent_at` holds the lease, as in
`mail.outgoing`). Twilio's answer decides what happens next:

- accepted: `sent`, with Twilio's message sid;
- a permanent refusal (a 4xx such as 21211 invalid number, 21610 unsubscribed by STOP, 21614 not a
  mobile number, 21408 region not enabled): `failed` with the error and an event on the ticket,
  never retried; 21211 also marks the resident's phone unreachable;
- anything transient (429, 5xx, the network): back to `queued`, and the job fails so it is retried.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException, TwilioRestException

from intake.models import ContactPoint, OutgoingMessage, Ticket, utcnow
from intake.sms_refusals import describe
from intake.tickets import record_event
from mail.outgoing import claim_for_sending, retry_after_lease
from worker.context import sessions, settings

log = logging.getLogger(__name__)

# Longer than the send_sms job's timeout (worker/outbox.JOB_TIMEOUTS): see mail/outgoing.py.
SENDING_LEASE = timedelta(seconds=90)
FINAL_STATUSES = ("sent", "failed")
# Refusals that say the number itself cannot be reached at all (not only by SMS): 21610
# (unsubscribed) and 21614 (a landline) can still be called, so they do not mark it.
UNREACHABLE_CODES = frozenset({21211})


class TransientSmsError(Exception):
    """Twilio or the network said "later": the job fails so that it is retried."""


def _code(exc: TwilioRestException) -> int | None:
    return int(exc.code) if isinstance(exc.code, int) or str(exc.code).isdigit() else None


def is_permanent(exc: TwilioRestException) -> bool:
    """A 4xx other than 429 is Twilio refusing this message for good; 429 and 5xx are "later"."""
    status = int(exc.status or 0)
    return 400 <= status < 500 and status != 429 and _code(exc) != 20429


def _describe(exc: TwilioRestException) -> str:
    return describe(exc.status, _code(exc), exc.msg)


def _fail(session: Session, msg: OutgoingMessage, exc: TwilioRestException) -> str:
    error = _describe(exc)
    msg.status, msg.error, msg.sent_at = "failed", error[:2000], None
    code = _code(exc)
    if code in UNREACHABLE_CODES:
        for point in session.scalars(
            select(ContactPoint).where(ContactPoint.kind == "phone", ContactPoint.value == msg.to)
        ):
            point.unreachable, point.unreachable_reason = True, error[:2000]
    ticket = session.get(Ticket, msg.ticket_id) if msg.ticket_id else None
    if ticket is not None:
        record_event(
            session,
            ticket,
            "sms_failed",
            f"SMS to {msg.to} was refused: {error}",
            actor="worker",
            outgoing_id=msg.id,
            code=code,
        )
    session.commit()
    return f"failed ({error})"


def send_sms(outgoing_id: int) -> str:
    """Send one SMS row once. Without Twilio the row stays queued: `hotline outbox list` shows it."""
    stg = settings()
    with sessions()() as session:
        msg = session.get(OutgoingMessage, outgoing_id)
        if msg is None or msg.channel != "sms":
            return "no such SMS"
        if msg.status in FINAL_STATUSES:
            return f"already {msg.status}"
        if not stg.twilio_configured or not stg.twilio_number:
            return "kept locally (no Twilio configured)"
        if not claim_for_sending(session, outgoing_id, channel="sms", lease=SENDING_LEASE):
            return retry_after_lease(session, outgoing_id, "send_sms", SENDING_LEASE, "urgent")
        session.refresh(msg)
        from voice.dialer import twilio_client

        try:
            created = twilio_client(stg).messages.create(
                to=msg.to, from_=stg.twilio_number, body=msg.body_text
            )
        except TwilioRestException as exc:
            if is_permanent(exc):
                return _fail(session, msg, exc)
            _release(session, msg, _describe(exc))
            raise TransientSmsError(_describe(exc)) from exc
        except (TwilioException, OSError, TimeoutError) as exc:  # requests' errors are OSErrors
            _release(session, msg, f"no answer from Twilio ({type(exc).__name__}): {exc}")
            raise
        except Exception as exc:
            _release(session, msg, f"{type(exc).__name__}: {exc}")
            raise
        msg.status, msg.sent_at, msg.message_id, msg.error = (
            "sent",
            utcnow(),
            str(created.sid),
            None,
        )
        session.commit()
        return f"sent {created.sid}"


def _release(session: Session, msg: OutgoingMessage, error: str) -> None:
    """Back to `queued` for the retry; the job raises next."""
    session.rollback()
    session.refresh(msg)
    msg.status, msg.error, msg.sent_at = "queued", error[:2000], None
    session.commit()
    log.warning("SMS %s not sent yet: %s", msg.id, error)
