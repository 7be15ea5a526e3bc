"""Event metrics, counted by the process that sees the event (docs/operations.md lists them all).

Plain `prometheus_client` metrics: with `PROMETHEUS_MULTIPROC_DIR` set (before the process starts) they
are written there, so every gunicorn worker, RQ worker and listener on a machine adds up at one
`/metrics`. The centre's state (queues, outbox, tickets) is read at scrape time by `worker.metrics`.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# Switched off only by the benchmark that measures what metrics cost (bench/bench_metrics.py).
ENABLED = True

HTTP_SECONDS = Histogram(
    "hotline_http_request_seconds",
    "Time to answer an HTTP request (Twilio webhooks, API, console), by blueprint",
    ["area", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_SECONDS = Histogram(
    "hotline_job_seconds",
    "Time an RQ job ran, by job and outcome",
    ["job", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SMTP_ANSWERS = Counter(
    "hotline_smtp_answers",
    "SMTP listener answers to RCPT and DATA, by reply code (250 accepted; 4xx/5xx refused)",
    ["code"],
)
SIGNATURE_FAILURES = Counter(
    "hotline_webhook_signature_failures",
    "Twilio webhooks refused because their signature did not check",
)


def observe_job(job: str, outcome: str, seconds: float) -> None:
    if ENABLED:
        JOB_SECONDS.labels(job, outcome).observe(seconds)


def smtp_answer(reply: str) -> str:
    """Counts an SMTP reply by its code and returns it unchanged."""
    if ENABLED:
        SMTP_ANSWERS.labels(reply[:3]).inc()
    return reply


def mark_dead(pid: int) -> None:
    """gunicorn's child_exit hook: a dead process's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
