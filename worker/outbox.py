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
from rq.registry import StartedJobRegistry
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
JOB_TIMEOUT_SECONDS = 300
# A worker killed mid-job leaves its job "started" until RQ's heartbeat for it lapses: the job
# timeout plus RQ's 60 s grace. Only then does the reconciler see it as abandoned and re-queue it.
ABANDONED_AFTER = timedelta(seconds=JOB_TIMEOUT_SECONDS + 60 + 30)


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
    queue(first.queue if first.queue in QUEUE_NAMES else "default", connection).enqueue_call(
        func,
        kwargs=kwargs,
        job_id=job_id_for(first),
        timeout=JOB_TIMEOUT_SECONDS,
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
                for unsent in (row for later in groups[index:] for row in later):
                    unsent.status, unsent.rq_job_id = "pending", None
                    unsent.last_error = f"could not reach the queue: {exc}"
                    unsent.available_at = utcnow() + timedelta(seconds=5)
                session.commit()
                raise
            moved += len(group)
    return moved


def _job_status(job_id: str, connection: Redis) -> tuple[JobStatus | None, str | None]:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return None, None
    status = job.get_status(refresh=True)
    error = None
    if status == JobStatus.FAILED:
        result = job.latest_result()
        error = (result.exc_string or "").strip().splitlines()[-1:] if result else None
        error = error[0] if error else "failed"
    return status, error


_LIVE = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def reconcile_once(
    sessions: sessionmaker[Session], connection: Redis, now: datetime | None = None
) -> dict[str, int]:
    """Repair what a crash, a killed worker or a Redis restart left behind."""
    now = now or utcnow()
    counts = {"done": 0, "requeued": 0, "failed": 0}
    for name in QUEUE_NAMES:
        StartedJobRegistry(name, connection=connection).cleanup(timestamp=now.timestamp())
    with sessions() as session:
        rows = list(
            session.scalars(
                select(Outbox)
                .where(Outbox.status == "enqueued", Outbox.enqueued_at < now - RECONCILE_GRACE)
                .limit(1000)
            )
        )
        seen: dict[str, tuple[JobStatus | None, str | None]] = {}
        for row in rows:
            job_id = job_id_for(row)
            if job_id not in seen:
                seen[job_id] = _job_status(job_id, connection)
                if seen[job_id][0] not in (*_LIVE, JobStatus.FINISHED, None):
                    Job.fetch(job_id, connection=connection).delete()
            status, error = seen[job_id]
            if status == JobStatus.FINISHED:
                row.status, row.done_at = "done", now
                counts["done"] += 1
            elif status in _LIVE:
                continue
            else:
                reason = error or (
                    "the job vanished from Redis"
                    if status is None
                    else f"the job is {status.value}"
                )
                row.rq_job_id = None
                if row.attempts >= MAX_ATTEMPTS:
                    row.status, row.last_error = "failed", reason
                    counts["failed"] += 1
                    log.error("outbox %s (%s) failed for good: %s", row.id, row.job, reason)
                else:
                    row.status, row.last_error = "pending", reason
                    row.available_at = now + timedelta(seconds=min(600, 5 * 2**row.attempts))
                    counts["requeued"] += 1
                    log.warning("outbox %s (%s) re-queued: %s", row.id, row.job, reason)
        session.commit()
    return counts


def retry_failed(sessions: sessionmaker[Session], row_id: int) -> bool:
    """An operator's retry of a job that failed for good."""
    with sessions() as session:
        changed = session.execute(
            update(Outbox)
            .where(Outbox.id == row_id, Outbox.status == "failed")
            .values(status="pending", attempts=0, available_at=utcnow())
        ).rowcount
        session.commit()
    return bool(changed)
