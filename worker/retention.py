"""The daily retention job and the recording deleter it shares with `hotline residents erase`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from intake import audit
from intake.clock import utcnow
from intake.config import Settings, get_settings
from intake.db import session_factory
from intake.retention import sweep

log = logging.getLogger(__name__)


def recording_deleter(settings: Settings) -> Callable[[str], None] | None:
    """Deletes a recording at Twilio (REST DELETE .../Recordings/SID); gone already (404) is fine.
    None without a Twilio account (the simulator's recordings live nowhere else)."""
    if not settings.twilio_configured:
        return None
    from twilio.base.exceptions import TwilioRestException

    from voice.dialer import twilio_client

    client = twilio_client(settings)

    def forget(sid: str) -> None:
        try:
            client.recordings(sid).delete()
        except TwilioRestException as exc:
            if exc.status != 404:
                raise
        log.info("recording %s deleted at Twilio", sid)

    return forget


def retention_sweep() -> dict[str, int]:
    """Remove what is past its retention; the report goes to the log and the audit log."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        removed = sweep(
            session,
            settings.config,
            settings.data_dir,
            utcnow(),
            forget_recording=recording_deleter(settings),
        )
        audit.record(session, "retention_run", actor="system", role=None, removed=removed)
        session.commit()
    log.info("retention sweep removed %s", ", ".join(f"{k} {n}" for k, n in removed.items()))
    return removed
