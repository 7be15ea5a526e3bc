"""The worker process: an RQ worker on the urgent, default and low queues, plus the outbox relay and
the reconciler in a side thread (every worker runs them; their UPDATEs make that safe).

RQ's `work()` returns (or raises) when it loses Redis; `run_worker` then starts a new RQ worker
after a backoff (1 s doubling to 30 s) until Redis answers again, and stops only on SIGTERM/SIGINT.
The side thread says the worker is alive every half second (`outbox.say_alive`): the reconciler
re-queues a started job of a worker that stopped saying so within seconds."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from datetime import timedelta
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker, Worker

from intake import logging_setup, metrics
from intake.config import get_settings
from intake.db import session_factory
from intake.models import utcnow
from worker.housekeeping import restore_callback_timers, schedule_periodic, sweep_stale_sending
from worker.outbox import RELAY_BATCH, reconcile_once, relay_once, say_alive
from worker.queues import all_queues, redis_connection

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 0.5
RECONCILE_INTERVAL_SECONDS = 10.0
JOB_MONITORING_INTERVAL = 10
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0
# A worker that ran this long before losing Redis starts its backoff from the beginning again.
RECONNECT_RESET_AFTER_SECONDS = 60.0


class Housekeeper(threading.Thread):
    def __init__(self, connection: Redis, database_url: str) -> None:
        super().__init__(name="hotline-housekeeper", daemon=True)
        self.connection = connection
        self.database_url = database_url
        self.stop_event = threading.Event()
        self.worker_names: list[str] = []

    def run(self) -> None:
        sessions = session_factory(self.database_url)
        last_reconcile = 0.0
        last_minute = ""
        while not self.stop_event.is_set():
            moved = 0
            try:
                if self.worker_names:
                    say_alive(self.connection, list(self.worker_names))
                moved = relay_once(sessions, self.connection, self.database_url)
                minute = f"{utcnow():%Y%m%d%H%M}"
                if minute != last_minute:
                    schedule_periodic(sessions)
                    last_minute = minute
                if time.monotonic() - last_reconcile > RECONCILE_INTERVAL_SECONDS:
                    reconcile_once(sessions, self.connection)
                    restore_callback_timers(sessions)
                    sweep_stale_sending(sessions)
                    last_reconcile = time.monotonic()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("outbox relay cannot reach Redis (%s); retrying", exc)
                self.stop_event.wait(2.0)
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
    worker_cls = HotlineSimpleWorker if simple else HotlineWorker
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


class _StopAware:
    """Remembers that RQ was asked to stop (SIGTERM/SIGINT), as against losing Redis; times each job
    (`hotline_job_seconds`) and binds its id to the job's log lines."""

    stop_requested_by_signal = False

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        token = logging_setup.push(job_id=job.id)
        started = time.perf_counter()
        ok = False
        try:
            ok = super().perform_job(job, queue, execution)  # type: ignore[misc]  # a mixin: super() is the RQ Worker it is mixed into
            return ok
        finally:
            metrics.observe_job(
                (job.func_name or "?").rsplit(".", 1)[-1],
                "ok" if ok else "failed",
                time.perf_counter() - started,
            )
            logging_setup.pop(token)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested_by_signal = True
        super().request_stop(signum, frame)  # type: ignore[misc]  # a mixin: super() is the RQ Worker it is mixed into


class HotlineWorker(_StopAware, Worker):
    pass


class HotlineSimpleWorker(_StopAware, SimpleWorker):
    pass


def _tidy(worker: Any) -> None:
    """What RQ's teardown could not do without Redis: its pubsub thread and scheduler process."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None:
        with contextlib.suppress(Exception):
            thread.stop()
            thread.join(timeout=1)
    if getattr(worker, "scheduler", None) is not None:
        with contextlib.suppress(Exception):
            worker.stop_scheduler()


def run_worker(*, burst: bool, with_scheduler: bool, fork: bool = True) -> None:
    settings = get_settings()
    conn = redis_connection()
    if burst:
        drain(conn, simple=not fork)
        return
    keeper = Housekeeper(conn, settings.database_url)
    keeper.start()
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    worker_cls = HotlineWorker if fork else HotlineSimpleWorker
    backoff = RECONNECT_FIRST_SECONDS
    try:
        while not stop.is_set():
            worker: HotlineWorker | HotlineSimpleWorker | None = None
            started = time.monotonic()
            try:
                worker = worker_cls(
                    all_queues(conn),
                    connection=conn,
                    job_monitoring_interval=JOB_MONITORING_INTERVAL,
                )
                keeper.worker_names = [worker.name]
                worker.work(with_scheduler=with_scheduler)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("worker lost Redis: %s", exc)
            # Between RQ workers, SIGTERM/SIGINT are ours again (RQ installed its own in work()).
            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            if worker is not None:
                if worker.stop_requested_by_signal:
                    break
                _tidy(worker)
            if time.monotonic() - started > RECONNECT_RESET_AFTER_SECONDS:
                backoff = RECONNECT_FIRST_SECONDS
            log.warning("RQ worker stopped without being asked to; reconnecting in %.0f s", backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
    finally:
        keeper.stop_event.set()
