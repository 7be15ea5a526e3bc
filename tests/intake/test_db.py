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


def test_a_forked_child_keeps_the_parents_engine_but_not_its_connections(pg_url) -> None:
    """RQ's forking worker runs each job in a child: the child reuses the engine (its dialect
    set-up and compiled statements) with a pool of its own, and the parent's pooled connection
    still works after the child is done with the database."""
    import os

    engine = get_engine(pg_url)
    parent_backend = _backend(engine)  # now pooled, checked in
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child = get_engine(pg_url)
            answer = f"{child is engine} {_backend(child)}"
        except BaseException as exc:  # reported to the parent below
            answer = f"error {exc!r}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    same_engine, child_backend = os.read(read, 200).decode().split(" ", 1)
    os.close(read)
    assert same_engine == "True"
    assert child_backend != str(parent_backend), "the child opened its own connection"
    assert _backend(engine) == parent_backend, "the parent's connection survived the child"
