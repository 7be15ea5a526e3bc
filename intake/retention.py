"""How long each kind of resident data is kept, and the daily sweep that removes what is older.

Configured in the YAML configuration (`HOTLINE_CONFIG`) as days per kind; `forever` (or 0) keeps a
kind for ever:

    retention:
      raw_mail: 90            # inbound mail as received (parsed text stays on the ticket)
      attachments: 365        # files residents sent
      recordings: 90          # call recordings: the file here and the recording at Twilio
      transcripts: 365        # what callers said (speech text on voice interactions)
      outgoing_messages: 365  # texts of emails and SMS sent (the row stays: no double sending)
      call_events: 90         # Twilio's status callbacks, with their numbers
      audit_log: 730

Tickets themselves are kept (statistics); `hotline residents erase` removes one resident's data at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from intake.config import HotlineConfig, RetentionSection
from intake.db import rowcount
from intake.models import (
    Attachment,
    CallStatusEvent,
    Interaction,
    OutgoingMessage,
    RawMessage,
)


def policy(config: HotlineConfig) -> dict[str, int | None]:
    """Days per kind from the configuration's `retention:` section (None: kept for ever)."""
    return config.retention.model_dump()


def sweep(
    session: Session,
    config: Any,
    data_dir: Path,
    now: datetime,
    forget_recording: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Removes what is older than its retention; counts per kind. The caller commits.

    A recording is removed here only once `forget_recording(sid)` deleted it at Twilio (it raises
    otherwise, and the recording waits for the next sweep)."""
    from intake.audit import purge_before
    from intake.privacy import remove_attachment

    days = policy(config)
    removed = dict.fromkeys(RetentionSection.model_fields, 0)

    def cutoff(kind: str) -> datetime | None:
        n = days[kind]
        return now - timedelta(days=n) if n else None

    if (c := cutoff("raw_mail")) is not None:
        removed["raw_mail"] = rowcount(
            session.execute(
                delete(RawMessage).where(RawMessage.received_at < c, RawMessage.status != "stored")
            )
        )
    for kind, recording in (("attachments", False), ("recordings", True)):
        if (c := cutoff(kind)) is None:
            continue
        query = select(Attachment).where(Attachment.created_at < c)
        query = query.where(
            Attachment.external_id.is_not(None) if recording else Attachment.external_id.is_(None)
        )
        for attachment in list(session.scalars(query.limit(5000))):
            if recording and forget_recording is not None and attachment.external_id:
                try:
                    forget_recording(attachment.external_id)
                except Exception:  # Twilio unreachable: kept, tried again tomorrow
                    continue
            remove_attachment(session, attachment, data_dir)
            removed[kind] += 1
    if (c := cutoff("transcripts")) is not None:
        removed["transcripts"] = rowcount(
            session.execute(
                update(Interaction)
                .where(
                    Interaction.channel == "voice",
                    Interaction.created_at < c,
                    Interaction.body_text != "",
                )
                .values(body_text="")
            )
        )
    if (c := cutoff("outgoing_messages")) is not None:
        removed["outgoing_messages"] = rowcount(
            session.execute(
                update(OutgoingMessage)
                .where(
                    OutgoingMessage.created_at < c,
                    OutgoingMessage.status.not_in(("queued", "sending")),
                    OutgoingMessage.body_text != "",
                )
                .values(body_text="", body_html=None)
            )
        )
    if (c := cutoff("call_events")) is not None:
        removed["call_events"] = rowcount(
            session.execute(delete(CallStatusEvent).where(CallStatusEvent.received_at < c))
        )
    if (c := cutoff("audit_log")) is not None:
        removed["audit_log"] = purge_before(session, c)
    return removed
