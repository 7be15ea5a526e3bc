"""Keeping the dashboard's daily roll-up (`intake.rollup`): every five minutes the days tickets
changed on, once a day the last week again."""

from __future__ import annotations

import logging

from intake.clock import utcnow
from intake.config import get_settings
from intake.db import session_factory
from intake.rollup import refresh

log = logging.getLogger(__name__)


def refresh_report_days(recent_days: int = 0) -> dict[str, int]:
    """Recompute stale days, fill missing ones, and the last `recent_days` days again."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        result = refresh(session, settings.config, utcnow(), recent_days=recent_days)
    if result.written:
        log.info(
            "report roll-up: %s day(s) written (%s .. %s)",
            len(result.written),
            result.written[0],
            result.written[-1],
        )
    return {"days": len(result.written), "stale_days": result.stale_days_cleared}
