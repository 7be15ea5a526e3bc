"""The outbox relay and the reconciler.

The relay claims committed outbox rows with a conditional UPDATE and puts them on RQ under the job id
`outbox-<id>`. Rows of a job with a batch form (`jobs.BATCH_FORMS`) that fall due together go as one
RQ job, `outbox-batch-<first id>`, recorded on each row: a burst of callbacks costs one job per
batch, not one each. The reconciler looks at rows that were handed to RQ and are not done: a job that
finished marks its rows done; a job that vanished (Redis restarted, worker killed) or failed goes
back to pending, with backoff, until it has failed too often and waits for an operator.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis import Redis
from rq import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.models import Outbox, utcnow
from worker import jobs
from worker.queues import QUEUE_NAMES, queue

log = logging.getLogger(__name__)

RELAY_BATCH = 200
# Rows per batch job: small enough that every worker gets a share of a burst.
JOB_BATCH = 25
RECONCILE_GRACE = timedelta(seconds=30)
MAX_ATTEMPTS = 6
# Per-queue job timeouts: a job that runs longer is stopped by RQ (and fails, to be retried). Short
# timeouts bound how long a lease or an abandoned job can hold work up.
JOB_TIMEOUT_SECONDS = 300
QUEUE_TIMEOUTS = {"urgent": 60, "default": 120, "low": JOB_TIMEOUT_SECONDS}
# Jobs that send: their claim's lease (mail/outgoing.py, worker/sms.py) must outlast the job.
JOB_TIMEOUTS = {"send_email": 60, "send_sms": 60}
# A worker killed mid-job leaves its job "started" until RQ's heartbeat for it lapses: the job
# timeout plus RQ's 60 s grace. A `hotline worker` also says it is alive every half second
# (`WORKER_ALIVE_TTL`): the reconciler takes a started job of a worker that stopped saying so as
# abandoned at once; RQ's own expiry is the fallback for workers that never said so (burst runs).
ABANDONED_AFTER = timedelta(seconds=JOB_TIMEOUT_SECONDS + 60 + 30)
WORKER_ALIVE_TTL = 10
WORKER_SEEN_TTL = 24 * 3600
ALIVE_KEY = "hotline:worker:alive:{}"
SEEN_KEY = "hotline:worker:seen:{}"


def job_timeout(job: str, queue_name: str) -> int:
    return JOB_TIMEOUTS.get(job, QUEUE_TIMEOUTS.get(queue_name, JOB_TIMEOUT_SECONDS))


def say_alive(connection: Redis, worker_names: list[str]) -> None:
    """A `hotline worker`'s heartbeat, from its housekeeper thread (it beats during a long job)."""
    with connection.pipeline() as pipe:
        for name in worker_names:
            pipe.set(ALIVE_KEY.format(name), "1", ex=WORKER_ALIVE_TTL)
            pipe.set(SEEN_KEY.format(name), "1", ex=WORKER_SEEN_TTL)
        pipe.execute()


def worker_died(connection: Redis, worker_name: str | None) -> bool:
    """A worker that used to say it was alive and has stopped: killed, or cut off for a while."""
    if not worker_name:
        return False
    alive, seen = connection.mget(ALIVE_KEY.format(worker_name), SEEN_KEY.format(worker_name))
    return seen is not None and alive is None


def job_id_for(row: Outbox) -> str:
    return row.rq_job_id or f"outbox-{row.id}"


def mark_done(job: Job, connection: Redis, result: object, *args: object, **kwargs: object) -> None:
    """RQ success callback: the rows are finished. The reconciler does the same if this is lost."""
    row_ids = job.meta.get("outbox_ids")
    url = job.meta.get("database_url")
    if not row_ids or url is None:
        return
    from intake.db import session_factory

    with session_factory(url)() as session:
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_(row_ids), Outbox.status != "done")
            .values(status="done", done_at=utcnow(), last_error=None)
        )
        session.commit()


def _groups(rows: list[Outbox]) -> list[list[Outbox]]:
    """Rows in due order, those with a batch form gathered (per job and queue) into batches."""
    groups: list[list[Outbox]] = []
    open_batches: dict[tuple[str, str], list[Outbox]] = {}
    for row in rows:
        form = jobs.BATCH_FORMS.get(row.job)
        if form is None or set(row.args) != {form[1]}:
            groups.append([row])
            continue
        key = (row.job, row.queue)
        batch = open_batches.get(key)
        if batch is None or len(batch) >= JOB_BATCH:
            batch = open_batches[key] = []
            groups.append(batch)
        batch.append(row)
    return groups


def _enqueue(rows: list[Outbox], connection: Redis, database_url: str) -> None:
    first = rows[0]
    if first.job not in jobs.JOBS:
        raise LookupError(f"no job called {first.job!r}")
    if len(rows) == 1:
        name, kwargs = first.job, first.args
    else:
        name, arg = jobs.BATCH_FORMS[first.job]
        kwargs = {f"{arg}s": [row.args[arg] for row in rows]}
    func = jobs.JOBS[name]
    queue_name = first.queue if first.queue in QUEUE_NAMES else "default"
    queue(queue_name, connection).enqueue_call(
        func,
        kwargs=kwargs,
        job_id=job_id_for(first),
        timeout=job_timeout(name, queue_name),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
        meta={"outbox_ids": [row.id for row in rows], "database_url": database_url},
        on_success=Callback(mark_done),
    )


def relay_once(
    sessions: sessionmaker[Session],
    connection: Redis,
    database_url: str,
    now: datetime | None = None,
) -> int:
    """Hand every due pending row to RQ once. Safe to run in many processes at once."""
    now = now or utcnow()
    moved = 0
    with sessions() as session:
        ids = list(
            session.scalars(
                select(Outbox.id)
                .where(Outbox.status == "pending", Outbox.available_at <= now)
                .order_by(Outbox.available_at, Outbox.id)
                .limit(RELAY_BATCH)
            )
        )
        if not ids:
            return 0
        claimed = list(
            session.scalars(
                update(Outbox)
                .where(Outbox.id.in_(ids), Outbox.status == "pending")
                .values(status="enqueued", enqueued_at=utcnow(), attempts=Outbox.attempts + 1)
                .returning(Outbox.id)
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
        rows = list(
            session.scalars(select(Outbox).where(Outbox.id.in_(claimed)).order_by(Outbox.id))
        )
        rows.sort(key=lambda r: (r.available_at, r.id))
        groups = _groups(rows)
        for group in groups:
            if len(group) > 1:
                for row in group:
                    row.rq_job_id = f"outbox-batch-{group[0].id}"
        session.commit()
        for index, group in enumerate(groups):
            try:
                _enqueue(group, connection, database_url)
            except LookupError as exc:
                for row in group:
                    row.status, row.last_error = "failed", str(exc)
                session.commit()
                continue
            except Exception as exc:
                # Not handed over, so not an attempt: a Redis outage must not spend the budget
                # that is meant for jobs that ran and failed.
                for unsent in (row for later in groups[index:] for row in later):
                    unsent.status, unsent.rq_job_id = "pending", None
                    unsent.attempts = max(0, unsent.attempts - 1)
                    unsent.last_error = f"could not reach the queue: {exc}"
                    unsent.available_at = utcnow() + timedelta(seconds=5)
                session.commit()
                raise
            moved += len(group)
    return moved


def _job_status(job_id: str, connection: Redis) -> tuple[JobStatus | None, str | None, Job | None]:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return None, None, None
    status = job.get_status(refresh=True)
    error: str | None = None
    if status == JobStatus.FAILED:
        result = job.latest_result()
        last_line = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        error = last_line[0] if last_line else "failed"
    elif status == JobStatus.STARTED and worker_died(connection, job.worker_name):
        return None, f"worker {job.worker_name} died while running it", job
    return status, error, job


def _forget(job: Job, connection: Redis) -> None:
    """Remove a dead job from Redis so its id can be enqueued again. RQ 3's `Job.delete` raises
    (`ValueError: Execution … not found`) for a job whose worker was killed: then the hash and the
    job's entries in the started registries are removed by hand."""
    try:
        job.delete()
        return
    except Exception as exc:
        log.info("RQ could not delete job %s (%s); removing it by hand", job.id, exc)
    prefix = f"{job.id}:".encode()
    for name in QUEUE_NAMES:
        key = StartedJobRegistry(name, connection=connection).key
        stale = [
            m
            for m in connection.zrange(key, 0, -1)
            if isinstance(m, bytes) and m.startswith(prefix)
        ]
        if stale:
            connection.zrem(key, *stale)
        connection.zrem(FailedJobRegistry(name, connection=connection).key, job.id)
    connection.delete(job.key)


_LIVE = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def _settle(
    session: Session,
    rows: list[Outbox],
    state: tuple[JobStatus | None, str | None, Job | None],
    connection: Redis,
    now: datetime,
    counts: dict[str, int],
) -> None:
    """One job's rows: done, still running, or back to pending (or failed for good)."""
    status, error, job = state
    if status == JobStatus.FINISHED:
        for row in rows:
            row.status, row.done_at = "done", now
        counts["done"] += len(rows)
        return
    if status in _LIVE:
        return
    if job is not None:
        _forget(job, connection)
    reason = error or (
        "the job vanished from Redis" if status is None else f"the job is {status.value}"
    )
    died = error is not None and status is None  # the worker died: not the job's fault
    for row in rows:
        row.rq_job_id = None
        if died:
            row.attempts = max(0, row.attempts - 1)
        if row.attempts >= MAX_ATTEMPTS:
            row.status, row.last_error = "failed", reason
            counts["failed"] += 1
            log.error("outbox %s (%s) failed for good: %s", row.id, row.job, reason)
        else:
            row.status, row.last_error = "pending", reason
            delay = 0 if died else min(600, 5 * 2**row.attempts)
            row.available_at = now + timedelta(seconds=delay)
            counts["requeued"] += 1


def reconcile_once(
    sessions: sessionmaker[Session], connection: Redis, now: datetime | None = None
) -> dict[str, int]:
    """Repair what a crash, a killed worker or a Redis restart left behind.

    Each job is settled and committed on its own: one that cannot be (a job RQ cannot read or
    delete, a row that cannot be saved) is logged and left for the next pass, and never stops the
    others. The log says "re-queued" only for rows whose change was committed."""
    now = now or utcnow()
    counts = {"done": 0, "requeued": 0, "failed": 0, "errors": 0}
    for name in QUEUE_NAMES:
        try:
            StartedJobRegistry(name, connection=connection).cleanup(timestamp=now.timestamp())
        except Exception:
            log.exception("cleaning up RQ's started jobs of %s failed; carrying on", name)
    with sessions() as session:
        rows = list(
            session.scalars(
                select(Outbox)
                .where(Outbox.status == "enqueued", Outbox.enqueued_at < now - RECONCILE_GRACE)
                .order_by(Outbox.id)
                .limit(1000)
            )
        )
        by_job: dict[str, list[Outbox]] = {}
        for row in rows:
            by_job.setdefault(job_id_for(row), []).append(row)
        for job_id, group in by_job.items():
            before = dict(counts)
            try:
                _settle(session, group, _job_status(job_id, connection), connection, now, counts)
                session.commit()
            except Exception:
                session.rollback()
                counts.update(before)
                counts["errors"] += 1
                log.exception(
                    "reconciling job %s (outbox %s) failed; next pass",
                    job_id,
                    ", ".join(str(r.id) for r in group),
                )
                continue
            for row in group:
                if row.status == "pending":
                    log.warning("outbox %s (%s) re-queued: %s", row.id, row.job, row.last_error)
    return counts
