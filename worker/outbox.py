"""The outbox relay and the reconciler.

The relay claims committed outbox rows with a conditional UPDATE and puts them on RQ under the job id
`outbox-<id>`. The reconciler looks at rows that were handed to RQ and are not done: a job that
finished marks its row done; a job that vanished (Redis restarted, worker killed) or failed goes back
to pending, with backoff, until it has failed too often and waits for an operator.
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
RECONCILE_GRACE = timedelta(seconds=30)
MAX_ATTEMPTS = 6
JOB_TIMEOUT_SECONDS = 300


def job_id_for(row_id: int) -> str:
    return f"outbox-{row_id}"


def mark_done(job: Job, connection: Redis, result: object, *args: object, **kwargs: object) -> None:
    """RQ success callback: the row is finished. The reconciler does the same if this is lost."""
    row_id = job.meta.get("outbox_id")
    url = job.meta.get("database_url")
    if row_id is None or url is None:
        return
    from intake.db import session_factory

    with session_factory(url)() as session:
        session.execute(
            update(Outbox)
            .where(Outbox.id == row_id, Outbox.status != "done")
            .values(status="done", done_at=utcnow(), last_error=None)
        )
        session.commit()


def _enqueue(row: Outbox, connection: Redis, database_url: str) -> None:
    func = jobs.JOBS.get(row.job)
    if func is None:
        raise LookupError(f"no job called {row.job!r}")
    name = row.queue if row.queue in QUEUE_NAMES else "default"
    queue(name, connection).enqueue_call(
        func,
        kwargs=row.args,
        job_id=job_id_for(row.id),
        timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"{row.job}({', '.join(f'{k}={v}' for k, v in row.args.items())})",
        meta={"outbox_id": row.id, "database_url": database_url},
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
        for index, row in enumerate(rows):
            try:
                _enqueue(row, connection, database_url)
            except LookupError as exc:
                row.status, row.last_error = "failed", str(exc)
                session.commit()
                continue
            except Exception as exc:
                for unsent in rows[index:]:
                    unsent.status = "pending"
                    unsent.last_error = f"could not reach the queue: {exc}"
                    unsent.available_at = utcnow() + timedelta(seconds=5)
                session.commit()
                raise
            moved += 1
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
        for row in rows:
            status, error = _job_status(job_id_for(row.id), connection)
            if status == JobStatus.FINISHED:
                row.status, row.done_at = "done", now
                counts["done"] += 1
            elif status in (
                JobStatus.QUEUED,
                JobStatus.STARTED,
                JobStatus.SCHEDULED,
                JobStatus.DEFERRED,
            ):
                continue
            else:
                reason = error or (
                    "the job vanished from Redis"
                    if status is None
                    else f"the job is {status.value}"
                )
                if status is not None:
                    Job.fetch(job_id_for(row.id), connection=connection).delete()
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
