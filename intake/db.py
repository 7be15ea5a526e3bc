"""Engine and sessions: one engine per database URL and process, SQLite tuned for several processes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[tuple[str, int], Engine] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    """Take the write lock at BEGIN so concurrent writers queue instead of failing on upgrade;
    a connection marked `reading=True` (see `reader`) only reads and takes no lock."""
    conn.exec_driver_sql(
        "BEGIN" if conn.get_execution_options().get("reading") else "BEGIN IMMEDIATE"
    )


# A connection back in use within this many seconds of its last use is not pinged again: one
# round trip fewer for every request and job on a busy server. pgbouncer's server_check_delay is
# the same rule (30 s there). A database restart is still noticed: idle connections are pinged,
# and the first statement that meets a dead one invalidates the whole pool.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _used(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_conn, None):
                raise exc.DisconnectionError() from error  # the pool reconnects and retries
            raise


def _tighten(path: Path, mode: int) -> None:
    """`mode` when `path` gives anything to group or others (a file we do not own is left)."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass


def _private_sqlite_file(db: Path) -> None:
    """The SQLite file holds password hashes and residents' personal data: create it 0600 (SQLite
    gives its -wal and -shm files the database file's mode) in a directory created 0700; the data
    directory (`HOTLINE_DATA_DIR`) is made 0700, and files an older version left readable are
    tightened."""
    parent = db.parent
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir = Path(os.environ.get("HOTLINE_DATA_DIR") or "var").resolve()
    if parent.resolve() == data_dir:
        _tighten(parent, 0o700)
    with suppress(FileExistsError):
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            _tighten(path, 0o600)


def get_engine(url: str) -> Engine:
    """The engine for `url` in this process (a forked child gets the parent's with a new pool)."""
    key = (url, os.getpid())
    engine = _engines.get(key)
    if engine is None:
        inherited = next((e for (u, _pid), e in _engines.items() if u == url), None)
        if inherited is not None:
            # A forked child (RQ's forking worker runs each job in one): a pool of its own, but
            # the parent's dialect set-up and compiled statements, so a job does not start cold.
            inherited.dispose(close=False)
            _engines[key] = inherited
            return inherited
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1] if "///" in url else ""
            if path and path != ":memory:" and not path.startswith("file:"):
                _private_sqlite_file(Path(path.split("?", 1)[0]))
            engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        else:
            # No ROLLBACK when a connection goes back to the pool: sessions and connections end
            # their own transactions, and psycopg drops its prepared statements on every
            # ROLLBACK, so each job would plan its statements afresh. (Isolation levels set for
            # a read are still put back on return.)
            engine = create_engine(url, pool_size=10, max_overflow=10, pool_reset_on_return=None)
            _ping_when_idle(engine)
        _engines[key] = engine
    return engine


def read_options(engine: Engine) -> dict[str, Any]:
    """Execution options for reads that share no snapshot with a later write. On SQLite they take
    no write lock (WAL readers run beside the writer); on PostgreSQL they run without a
    transaction, so no BEGIN and ROLLBACK round trips, and psycopg keeps the prepared statements
    it drops on every ROLLBACK."""
    if engine.dialect.name == "postgresql":
        return {"isolation_level": "AUTOCOMMIT"}
    return {"reading": True}


def reader(url: str) -> Engine:
    """The engine for such reads (see `read_options`)."""
    key = (f"read:{url}", os.getpid())
    engine = _engines.get(key)
    if engine is None:
        base = get_engine(url)
        engine = _engines[key] = base.execution_options(**read_options(base))
    return engine


def serialize_transactions(session: Session, name: str) -> None:
    """Let one transaction at a time past this point for `name`, until it commits or rolls back:
    for decisions that count rows and then add one (a limit), which two workers must not both
    take on the same count. SQLite already runs one writing transaction at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def insert_unless_present(session: Session, model: type[Any]) -> Any:
    """An INSERT of `model` that does nothing where a unique column already holds the value
    (PostgreSQL and SQLite `ON CONFLICT DO NOTHING`): one round trip for "add it unless another
    request just did", where a savepoint around a plain insert takes three."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (`Session.execute` is typed as returning a plain
    `Result`; for these statements it is a `CursorResult`)."""
    assert isinstance(result, CursorResult)
    return result.rowcount
