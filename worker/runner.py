"""The worker process: an RQ worker on the urgent, default and low queues, plus the outbox relay and
the reconciler in a side thread (every worker runs them; their UPDATEs make that safe)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from redis import Redis
from rq import SimpleWorker, Worker

from intake.config import get_settings
from intake.db import session_factory
from intake.models import utcnow
from worker.housekeeping import restore_callback_timers, schedule_periodic
from worker.outbox import RELAY_BATCH, reconcile_once, relay_once
from worker.queues import all_queues, redis_connection

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 0.5
RECONCILE_INTERVAL_SECONDS = 30.0
JOB_MONITORING_INTERVAL = 10


class Housekeeper(threading.Thread):
    def __init__(self, connection: Redis, database_url: str) -> None:
        super().__init__(name="hotline-housekeeper", daemon=True)
        self.connection = connection
        self.database_url = database_url
        self.stop_event = threading.Event()

    def run(self) -> None:
        sessions = session_factory(self.database_url)
        last_reconcile = 0.0
        last_minute = ""
        while not self.stop_event.is_set():
            moved = 0
            try:
                moved = relay_once(sessions, self.connection, self.database_url)
                minute = f"{utcnow():%Y%m%d%H%M}"
                if minute != last_minute:
                    schedule_periodic(sessions)
                    last_minute = minute
                if time.monotonic() - last_reconcile > RECONCILE_INTERVAL_SECONDS:
                    reconcile_once(sessions, self.connection)
                    restore_callback_timers(sessions)
                    last_reconcile = time.monotonic()
            except Exception:
                log.exception("outbox relay failed; retrying")
                self.stop_event.wait(2.0)
            if moved < RELAY_BATCH:
                self.stop_event.wait(RELAY_INTERVAL_SECONDS)


def drain(connection: Redis | None = None, *, max_rounds: int = 50, simple: bool = True) -> int:
    """Relay and run jobs until nothing is pending: `hotline worker --burst` and the tests."""
    settings = get_settings()
    conn = connection or redis_connection()
    sessions = session_factory(settings.database_url)
    worker_cls = SimpleWorker if simple else Worker
    rounds = 0
    for _ in range(max_rounds):
        rounds += 1
        moved = relay_once(sessions, conn, settings.database_url)
        queued = sum(q.count for q in all_queues(conn))
        if not moved and not queued:
            break
        worker_cls(all_queues(conn), connection=conn).work(burst=True, with_scheduler=False)
    reconcile_once(sessions, conn, now=utcnow() - timedelta(seconds=0))
    return rounds


def run_worker(*, burst: bool, with_scheduler: bool, fork: bool = True) -> None:
    settings = get_settings()
    conn = redis_connection()
    if burst:
        drain(conn, simple=not fork)
        return
    keeper = Housekeeper(conn, settings.database_url)
    keeper.start()
    try:
        worker_cls = Worker if fork else SimpleWorker
        worker_cls(
            all_queues(conn), connection=conn, job_monitoring_interval=JOB_MONITORING_INTERVAL
        ).work(with_scheduler=with_scheduler)
    finally:
        keeper.stop_event.set()
