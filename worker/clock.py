"""The time jobs see. Production reads the system clock; tests freeze it to walk through days."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from intake.models import utcnow

_frozen: datetime | None = None


def now() -> datetime:
    return _frozen or utcnow()


def set_now(moment: datetime | None) -> None:
    global _frozen
    if moment is not None and moment.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    _frozen = moment


@contextmanager
def frozen(moment: datetime) -> Iterator[None]:
    previous = _frozen
    set_now(moment)
    try:
        yield
    finally:
        set_now(previous)
