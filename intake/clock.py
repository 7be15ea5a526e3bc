"""The one clock: every function that stamps or compares times reads it here.

Production reads the system clock. Tests freeze it (`frozen`) to walk a ticket through days, or
travel the whole process with `time-machine`, which this reads through `datetime.now`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_frozen: datetime | None = None


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: the frozen moment when one is set, else the system clock."""
    return _frozen or datetime.now(UTC)


now = utcnow


def set_now(moment: datetime | None) -> None:
    global _frozen
    if moment is not None and moment.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    # Kept in UTC, as the system clock is read: a moment given in Taipei time must not come back
    # out of `utcnow()` (and into stored rows and API answers) with Taipei's offset.
    _frozen = moment.astimezone(UTC) if moment is not None else None


@contextmanager
def frozen(moment: datetime) -> Iterator[None]:
    previous = _frozen
    set_now(moment)
    try:
        yield
    finally:
        set_now(previous)
