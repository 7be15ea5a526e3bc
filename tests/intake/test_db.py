from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text

import intake.db
from intake.db import get_engine


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def _backend(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_an_idle_connection_killed_by_the_server_is_replaced_unseen(pg_url, monkeypatch) -> None:
    """A restart or an idle timeout on the server: the ping at checkout finds the dead connection
    and the pool opens a new one, so the caller never sees the failure."""
    engine = get_engine(pg_url)
    engine.dispose()
    first = _backend(engine)
    _terminate(pg_url, first)
    monkeypatch.setattr(intake.db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _backend(engine) != first


def test_a_connection_reused_at_once_is_not_pinged_and_recovers_after_one_failure(
    pg_url,
) -> None:
    """The price of skipping the ping on a busy connection: a statement that meets a connection
    killed since its last use fails once as a disconnect, and the pool is renewed for the next."""
    engine = get_engine(pg_url)
    engine.dispose()
    first = _backend(engine)
    _terminate(pg_url, first)
    with pytest.raises(exc.OperationalError) as failure:
        _backend(engine)
    assert failure.value.connection_invalidated
    assert _backend(engine) != first
