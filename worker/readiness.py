"""Is the centre ready to take calls and mail? The checks behind `/readyz` and `hotline doctor`.

Ready means: the database answers, its schema is at the newest migration, Redis answers, at least one
`hotline worker` said it was alive within the last `WORKER_ALIVE_TTL` seconds (its housekeeper beats
every half second, `worker.outbox.say_alive`, on a key that lapses after 10 s), and RQ's scheduler holds its lock (timed jobs: callbacks, SLA sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass

from intake.config import Settings

SCHEDULER_LOCK = "rq:scheduler-lock:{}"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _database(settings: Settings) -> list[Check]:
    from sqlalchemy import text

    from intake.db import get_engine
    from intake.migrate import heads

    try:
        with get_engine(settings.database_url).connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                current = {
                    r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))
                }
            except Exception:
                conn.rollback()
                current = set()
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200]
        return [
            Check("database", False, f"cannot reach the database: {reason}"),
            Check("migrations", False, "unknown: the database does not answer"),
        ]
    wanted = set(heads(settings.database_url))
    if current == wanted:
        migrations = Check(
            "migrations", True, f"schema at the newest migration ({', '.join(wanted)})"
        )
    else:
        have = ", ".join(sorted(current)) or "none"
        migrations = Check(
            "migrations",
            False,
            f"schema at {have}, newest is {', '.join(sorted(wanted))}: run `hotline init-db`",
        )
    return [Check("database", True, "database answers"), migrations]


def _redis(settings: Settings) -> list[Check]:
    if not settings.redis_url:
        reason = "REDIS_URL is not set"
        return [
            Check("redis", False, reason),
            Check("workers", False, f"unknown: {reason}"),
            Check("scheduler", False, f"unknown: {reason}"),
        ]
    from intake.redis_client import connect
    from worker.outbox import ALIVE_KEY, WORKER_ALIVE_TTL
    from worker.queues import QUEUE_NAMES

    conn = connect(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        conn.ping()
        alive = list(conn.scan_iter(match=ALIVE_KEY.format("*"), count=500))
        locks = [q for q in QUEUE_NAMES if conn.exists(SCHEDULER_LOCK.format(q))]
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200]
        return [
            Check("redis", False, f"cannot reach Redis: {reason}"),
            Check("workers", False, "unknown: Redis does not answer"),
            Check("scheduler", False, "unknown: Redis does not answer"),
        ]
    finally:
        conn.close()
    workers = (
        Check("workers", True, f"{len(alive)} worker(s) alive")
        if alive
        else Check(
            "workers",
            False,
            f"no worker heartbeat in the last {WORKER_ALIVE_TTL} s: start `hotline worker`",
        )
    )
    scheduler = (
        Check("scheduler", True, f"scheduler holds the lock for {', '.join(locks)}")
        if locks
        else Check(
            "scheduler",
            False,
            "no scheduler running: timed callbacks wait; start `hotline worker --with-scheduler`",
        )
    )
    return [Check("redis", True, "Redis answers"), workers, scheduler]


def run_checks(settings: Settings) -> list[Check]:
    return [*_database(settings), *_redis(settings)]
