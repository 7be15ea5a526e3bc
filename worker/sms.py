"""Sending an SMS that was written to the outgoing messages (Twilio Messaging when configured)."""

from __future__ import annotations

from sqlalchemy import update

from intake.models import OutgoingMessage, utcnow
from worker.context import sessions, settings


def send_sms(outgoing_id: int) -> str:
    """Send one SMS row once. Without Twilio the row stays queued: `hotline outbox list` shows it."""
    stg = settings()
    with sessions()() as session:
        msg = session.get(OutgoingMessage, outgoing_id)
        if msg is None or msg.channel != "sms":
            return "no such SMS"
        if msg.status == "sent":
            return "already sent"
        if not stg.twilio_configured or not stg.twilio_number:
            return "kept locally (no Twilio configured)"
        claimed = session.execute(
            update(OutgoingMessage)
            .where(OutgoingMessage.id == outgoing_id, OutgoingMessage.status != "sent")
            .values(status="sending", attempts=OutgoingMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if not claimed:
            return "being sent elsewhere"
        from voice.dialer import twilio_client

        try:
            created = twilio_client(stg).messages.create(
                to=msg.to, from_=stg.twilio_number, body=msg.body_text
            )
        except Exception as exc:
            session.refresh(msg)
            msg.status, msg.error = "queued", str(exc)
            session.commit()
            raise
        session.refresh(msg)
        msg.status, msg.sent_at, msg.message_id = "sent", utcnow(), str(created.sid)
        session.commit()
        return f"sent {created.sid}"
