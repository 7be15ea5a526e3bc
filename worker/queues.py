"""RQ connection and queues. The urgent queue is listed first, so workers always take it first."""

from __future__ import annotations

from functools import lru_cache

from redis import Redis
from rq import Queue

from intake.config import get_settings
from intake.redis_client import shared

URGENT = "urgent"
DEFAULT = "default"
LOW = "low"
QUEUE_NAMES = (URGENT, DEFAULT, LOW)


@lru_cache(maxsize=4)
def _connection(url: str) -> Redis:
    return shared(url)


def redis_connection(url: str | None = None) -> Redis:
    url = url or get_settings().redis_url
    if not url:
        raise RuntimeError(
            "REDIS_URL is not set: start everything with `hotline up`, or set REDIS_URL"
        )
    return _connection(url)


def queue(name: str, connection: Redis | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or redis_connection())


def all_queues(connection: Redis | None = None) -> list[Queue]:
    conn = connection or redis_connection()
    return [Queue(name, connection=conn) for name in QUEUE_NAMES]
