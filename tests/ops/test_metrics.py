"""`/metrics`: what happened and how the centre stands, as Prometheus reads it; only for those
allowed; every process's figures added up in gunicorn's multiprocess mode."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from datetime import datetime, timedelta

from sqlalchemy import select

from intake.models import Ticket
from tests.ops.metrics_helpers import total, value
from tests.processes import wait_for
from tests.worker.test_reliability import kill
from voice.simulator import HANGUP

RESIDENT = "chen.yu@example.tw"


def scrape(world) -> str:  # type: ignore[no-untyped-def]
    response = world.web.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_it_counts_contacts_tickets_smtp_answers_webhooks_and_sla_breaches(world, demo):
    tz = demo.config.timezone
    world.at(datetime(2026, 12, 1, 10, 0, tzinfo=tz))
    before = scrape(world)

    world.send_mail(sender=f"陳宇 <{RESIDENT}>", subject="電梯故障", body="A棟電梯停在三樓不動了。")
    world.call([HANGUP], caller="+886912345678")
    with smtplib.SMTP("127.0.0.1", world._listener.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("someone@example.net")
        code, _ = smtp.rcpt("nobody@hotline.localhost")
    assert code == 550
    assert world.web.post("/voice/incoming", data={"CallSid": "CAforged"}).status_code == 403
    world.drain()

    after = scrape(world)
    assert value(after, "hotline_contacts_received_total", channel="email") == 1
    with world.sessions() as s:
        statuses = list(s.scalars(select(Ticket.status)))
    assert total(after, "hotline_tickets") == len(statuses) >= 1
    assert value(after, "hotline_tickets", status="routed") == statuses.count("routed")
    grew = {
        "smtp 250": ("hotline_smtp_answers_total", {"code": "250"}),
        "smtp 550": ("hotline_smtp_answers_total", {"code": "550"}),
        "forged webhooks": ("hotline_webhook_signature_failures_total", {}),
    }
    for what, (name, labels) in grew.items():
        assert value(after, name, **labels) - value(before, name, **labels) == 1, what
    voice_requests = total(after, "hotline_http_request_seconds_count", area="voice")
    assert voice_requests - total(before, "hotline_http_request_seconds_count", area="voice") >= 2
    for queue in ("urgent", "default", "low"):
        assert value(after, "hotline_queue_jobs", queue=queue) == 0
        assert value(after, "hotline_queue_oldest_seconds", queue=queue) == 0
    assert value(after, "hotline_outbox_oldest_seconds") == 0
    assert value(after, "hotline_jobs_failed") == 0
    assert value(after, "hotline_sla_breached_tickets", sla="resolution") == 0

    # A week later nothing was resolved: every open ticket is past its resolution time.
    world.at(world.now + timedelta(days=7))
    later = scrape(world)
    with world.sessions() as s:
        open_with_sla = s.scalar(
            select(Ticket.id).where(Ticket.resolution_due_at.is_not(None)).limit(1)
        )
    assert open_with_sla is not None
    assert value(later, "hotline_sla_breached_tickets", sla="resolution") >= 1


def test_it_shows_metrics_only_to_the_allowed(env, monkeypatch):
    from intake.config import get_settings
    from web import create_app

    monkeypatch.setenv("METRICS_TOKEN", "s3cret-scrape-token")
    monkeypatch.setenv("METRICS_ALLOW", "10.0.0.0/8")
    get_settings.cache_clear()
    web = create_app({"TESTING": True}).test_client()
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert web.get("/metrics", environ_base=outside).status_code == 403
    wrong = {"Authorization": "Bearer nope"}
    assert web.get("/metrics", environ_base=outside, headers=wrong).status_code == 403
    right = {"Authorization": "Bearer s3cret-scrape-token"}
    assert web.get("/metrics", environ_base=outside, headers=right).status_code == 200
    assert web.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert web.get("/metrics").status_code == 403  # 127.0.0.1 is no longer in the list


def test_a_worker_process_exports_its_job_timings_through_the_shared_directory(
    env, demo, sessions, tmp_path, monkeypatch
):
    from intake.service import receive
    from tests.factories import email_contact
    from web import create_app

    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "worker", "--without-scheduler"],
        env={**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(shared)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("ab"),
    )
    try:
        receipt = receive(sessions, email_contact(), demo.config)

        def routed() -> bool:
            with sessions() as s:
                status = s.scalar(select(Ticket.status).where(Ticket.ref == receipt.ticket_ref))
            return status == "routed"

        wait_for(routed, 30, "the worker to route the ticket")
        web = create_app({"TESTING": True}).test_client()

        def exported() -> str | None:
            text = web.get("/metrics").get_data(as_text=True)
            done = value(text, "hotline_job_seconds_count", job="route_ticket", outcome="ok")
            return text if done >= 1 else None

        text = wait_for(exported, 15, "the worker's job timing at /metrics")
        assert value(text, "hotline_tickets", status="routed") == 1
    finally:
        kill(worker)
