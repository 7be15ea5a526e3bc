"""What `/metrics` answers: every process's event metrics (`intake.metrics`) plus the state of the
centre (tickets by status, queue depths, outbox backlog, callbacks due and late...), read from the
database and Redis at scrape time (`StateCollector`), so it is right whichever process answers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select

from intake.clock import utcnow
from intake.config import HotlineConfig


class StateCollector(Collector):
    """The centre's state, read from the database and Redis at scrape time."""

    def __init__(
        self, database_url: str, redis_url: str | None, config: HotlineConfig | None = None
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.config = config

    def collect(self) -> Iterator[Any]:
        yield from self._database()
        if self.redis_url:
            yield from self._redis()

    def _database(self) -> Iterator[Any]:
        from intake.db import session_factory
        from intake.models import (
            Callback,
            ChannelHealth,
            Interaction,
            Outbox,
            RawMessage,
            Ticket,
        )

        now = utcnow()
        with session_factory(self.database_url)() as db:
            contacts = CounterMetricFamily(
                "hotline_contacts_received",
                "Inbound contacts stored, by channel",
                labels=["channel"],
            )
            for channel, n in db.execute(
                select(Interaction.channel, func.count())
                .where(Interaction.direction == "in")
                .group_by(Interaction.channel)
            ):
                contacts.add_metric([channel], n)
            yield contacts

            tickets = GaugeMetricFamily("hotline_tickets", "Tickets by status", labels=["status"])
            for status, n in db.execute(
                select(Ticket.status, func.count()).group_by(Ticket.status)
            ):
                tickets.add_metric([status], n)
            yield tickets

            open_ = Ticket.status.not_in(("resolved", "closed"))
            breached = GaugeMetricFamily(
                "hotline_sla_breached_tickets",
                "Open tickets past their SLA due time, by which SLA",
                labels=["sla"],
            )
            breached.add_metric(
                ["first_response"],
                db.scalar(
                    select(func.count()).where(
                        open_, Ticket.status == "new", Ticket.first_response_due_at < now
                    )
                )
                or 0,
            )
            breached.add_metric(
                ["resolution"],
                db.scalar(select(func.count()).where(open_, Ticket.resolution_due_at < now)) or 0,
            )
            yield breached

            outbox = GaugeMetricFamily(
                "hotline_outbox_rows",
                "Outbox rows (work owed to workers), by status",
                labels=["status"],
            )
            for status, n in db.execute(
                select(Outbox.status, func.count()).group_by(Outbox.status)
            ):
                outbox.add_metric([status], n)
            yield outbox
            oldest = db.scalar(
                select(func.min(Outbox.created_at)).where(Outbox.status.in_(("pending", "queued")))
            )
            yield GaugeMetricFamily(
                "hotline_outbox_oldest_seconds",
                "Age of the oldest outbox row not yet done (0 when none)",
                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            )
            yield GaugeMetricFamily(
                "hotline_jobs_failed",
                "Jobs that failed for good and wait for an operator (hotline jobs failed)",
                value=db.scalar(select(func.count()).where(Outbox.status == "failed")) or 0,
            )

            callbacks = GaugeMetricFamily(
                "hotline_callbacks",
                "Scheduled callbacks due now, and late by over 15 min",
                labels=["state"],
            )
            waiting = Callback.status == "scheduled"
            callbacks.add_metric(
                ["due"], db.scalar(select(func.count()).where(waiting, Callback.due_at <= now)) or 0
            )
            callbacks.add_metric(
                ["late"],
                db.scalar(
                    select(func.count()).where(waiting, Callback.due_at <= now - _minutes(15))
                )
                or 0,
            )
            yield callbacks

            yield GaugeMetricFamily(
                "hotline_mail_quarantined",
                "Inbound mail held in quarantine (hotline mail quarantine)",
                value=db.scalar(select(func.count()).where(RawMessage.status == "quarantined"))
                or 0,
            )

            last_ok = GaugeMetricFamily(
                "hotline_channel_last_ok_timestamp_seconds",
                "When each intake channel (one per IMAP mailbox, the SMTP listener) last worked",
                labels=["channel"],
            )
            up = GaugeMetricFamily(
                "hotline_channel_up", "1 when the channel's last attempt worked", labels=["channel"]
            )
            for row in db.scalars(select(ChannelHealth)):
                if row.last_ok_at is not None:
                    last_ok.add_metric([row.name], row.last_ok_at.timestamp())
                up.add_metric([row.name], 1.0 if row.status == "ok" else 0.0)
            yield last_ok
            yield up
            if self.config is not None:
                yield from _desk(db, self.config, now)

    def _redis(self) -> Iterator[Any]:
        from rq.job import Job

        from worker.queues import all_queues, redis_connection

        depth = GaugeMetricFamily(
            "hotline_queue_jobs", "Jobs waiting per RQ queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "hotline_queue_oldest_seconds",
            "Age of the oldest job waiting per RQ queue (0 when empty)",
            labels=["queue"],
        )
        failed = GaugeMetricFamily(
            "hotline_queue_failed_jobs", "Jobs in RQ's failed registry per queue", labels=["queue"]
        )
        conn = redis_connection(self.redis_url)
        wall = time.time()
        for q in all_queues(conn):
            depth.add_metric([q.name], q.count)
            failed.add_metric([q.name], q.failed_job_registry.count)
            oldest = 0.0
            first = q.get_job_ids(0, 1)
            if first:
                job = Job.fetch(first[0], connection=conn)
                if job.enqueued_at is not None:
                    oldest = max(0.0, wall - job.enqueued_at.timestamp())
            age.add_metric([q.name], oldest)
        yield depth
        yield age
        yield failed


def _desk(db: Any, config: HotlineConfig, now: Any) -> Iterator[Any]:
    """Live calls to operators: the wallboard's figures (`intake.desk.figures`, read only)."""
    from intake import desk
    from intake.models import DeskCall

    board = desk.figures(db, config, now)
    yield GaugeMetricFamily(
        "hotline_desk_callers_waiting",
        "Callers waiting in the queue for an operator now",
        value=board["waiting"],
    )
    yield GaugeMetricFamily(
        "hotline_desk_longest_wait_seconds",
        "How long the caller waiting longest has waited (0 when nobody waits)",
        value=board["longest_wait_seconds"],
    )
    operators = GaugeMetricFamily(
        "hotline_desk_operators", "Desk operators by state", labels=["state"]
    )
    for state, n in board["operators"].items():
        operators.add_metric([state], n)
    yield operators
    today = GaugeMetricFamily(
        "hotline_desk_calls_today",
        "Calls to operators since midnight in the centre's time zone, as on the wallboard "
        "(short abandons left out of offered and abandoned)",
        labels=["outcome"],
    )
    for outcome in ("offered", "answered", "abandoned", "short_abandoned", "callbacks"):
        today.add_metric([outcome], board[outcome])
    yield today
    if board["service_level"] is not None:
        yield GaugeMetricFamily(
            "hotline_desk_service_level_ratio",
            "Today's calls answered within the service-level time / (answered + abandoned)",
            value=board["service_level"] / 100,
        )
    calls = CounterMetricFamily(
        "hotline_desk_calls",
        "Calls that asked for an operator since the start (for rate() and increase()), by outcome",
        labels=["outcome"],
    )
    offered, answered, abandoned = db.execute(
        select(
            func.count(),
            func.count(DeskCall.answered_at),
            func.count().filter(DeskCall.status == "abandoned"),
        )
    ).one()
    calls.add_metric(["offered"], offered)
    calls.add_metric(["answered"], answered)
    calls.add_metric(["abandoned"], abandoned)
    yield calls


def _minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)


def exposition(
    database_url: str, redis_url: str | None, config: HotlineConfig | None = None
) -> bytes:
    """The text a scrape gets: every process's event metrics plus the centre's state."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        events = CollectorRegistry()
        multiprocess.MultiProcessCollector(events, path=path)
    else:
        events = REGISTRY  # this process's own metrics
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(database_url, redis_url, config))
    return generate_latest(events) + generate_latest(state)
