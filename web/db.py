"""The console's database sessions: a read-only view gets a session without a write transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake.db import reader


def read_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a view that only reads (a lone UPDATE such as a token's last use is fine): its
    session comes from `intake.db.reader` (no transaction on PostgreSQL, no write lock on SQLite),
    so the page's prepared queries are planned once per connection, not on every request."""
    view.read_only = True  # type: ignore[attr-defined]  # a mark on the function, read per request
    return view


def read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for `read_only` views."""
    return sessionmaker(reader(url), expire_on_commit=False)
