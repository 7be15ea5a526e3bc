"""Webhooks refused for a wrong signature, counted per minute in Redis so every web process on every
machine adds to one count, and the alert check (`worker.alerts`) reads the rate of the last minutes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

KEY = "hotline:webhooks:rejected:{minute}"
KEEP_SECONDS = 3600


def _minute(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


def note(redis: Any, now: datetime) -> None:
    """Counts one refused webhook in the minute of `now`."""
    key = KEY.format(minute=_minute(now))
    pipe = redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, KEEP_SECONDS)
    pipe.execute()


def count(redis: Any, now: datetime, minutes: int) -> int:
    """Webhooks refused in the `minutes` minutes up to and including the minute of `now`."""
    last = _minute(now)
    keys = [KEY.format(minute=m) for m in range(last - minutes + 1, last + 1)]
    return sum(int(v) for v in redis.mget(keys) if v is not None)
