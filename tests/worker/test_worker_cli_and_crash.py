"""The worker's commands, and a worker killed in the middle of placing a callback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from click.testing import CliRunner
from redis import Redis
from rq.job import Job
from sqlalchemy import select, text

from intake.callbacks import schedule_callback
from intake.cli import main
from intake.models import Call, Callback, CallbackAttempt, Outbox, Ticket, utcnow
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.worker.helpers import run_jobs
from worker.outbox import ABANDONED_AFTER, reconcile_once, relay_once


def test_routing_test_replays_a_rule_file_and_prints_what_would_change(
    demo, sessions, redis_url, tmp_path
):
    conn = Redis.from_url(redis_url)
    leak = receive(sessions, email_contact(), demo.config)
    receive(sessions, email_contact(subject="發票", text="請問管理費發票"), demo.config)
    run_jobs(conn, utcnow() + timedelta(seconds=5))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "routing_rules:\n"
        "  - name: leaks-to-cleaning\n"
        "    when: {keywords: [漏水]}\n"
        "    then: {department: cleaning, priority: P2, sla_profile: high}\n"
        "  - name: everything-else\n"
        "    when: {}\n"
        "    then: {department: billing, sla_profile: low}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["routing", "test", "--rules", str(rules), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    [change] = rows
    with sessions() as s:
        assert change["ref"] == s.get(Ticket, leak.ticket_id).ref
    assert change["current"] == {"rule": "repairs", "department": "engineering", "priority": "P3"}
    assert change["new"]["department"] == "cleaning" and change["new"]["priority"] == "P2"
    assert "text mentions 漏水" in change["why"]
    text_out = CliRunner().invoke(main, ["routing", "test", "--rules", str(rules)])
    assert "1 of the last 2 tickets would be routed differently" in text_out.output
    rules.write_text("routing_rules:\n  - name: x\n    then: {department: nowhere}\n")
    bad = CliRunner().invoke(main, ["routing", "test", "--rules", str(rules)])
    assert bad.exit_code == 2 and "then.department" in bad.output


def test_failed_jobs_are_listed_with_their_reason_and_can_be_retried(demo, sessions):
    with sessions() as s:
        s.add(
            Outbox(
                job="notify_department",
                args={"ticket_id": 1},
                status="failed",
                attempts=6,
                last_error="SMTP server refused: 550",
            )
        )
        s.commit()
        row_id = s.scalar(select(Outbox.id))
    listed = CliRunner().invoke(main, ["jobs", "failed"])
    assert f"{row_id}  notify_department(ticket_id=1)" in listed.output
    assert "SMTP server refused: 550" in listed.output
    assert CliRunner().invoke(main, ["jobs", "retry", str(row_id)]).exit_code == 0
    assert CliRunner().invoke(main, ["jobs", "retry", str(row_id)]).exit_code == 1
    with sessions() as s:
        assert s.get(Outbox, row_id).status == "pending"


def test_a_worker_killed_while_placing_a_callback_dials_it_exactly_once(
    demo, sessions, redis_url, settings, env, db_url
):
    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, call_contact(text=""), demo.config)
    now = utcnow()
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        cb = schedule_callback(
            s, ticket, phone="+886912000001", purpose="missed_call", config=demo.config, now=now
        )
        cb.due_at = now - timedelta(minutes=1)
        s.flush()
        s.execute(
            Outbox.__table__.update().where(Outbox.job == "place_callback").values(available_at=now)
        )
        s.commit()
        callback_id = cb.id
    run_jobs(conn, now + timedelta(seconds=1))  # route and acknowledge first
    with sessions() as s:
        row = s.scalar(select(Outbox).where(Outbox.job == "place_callback"))
        s.execute(Outbox.__table__.update().where(Outbox.id == row.id).values(status="pending"))
        s.execute(
            Callback.__table__.update()
            .where(Callback.id == callback_id)
            .values(status="scheduled", attempts=0)
        )
        s.execute(CallbackAttempt.__table__.delete())
        s.execute(Call.__table__.delete())
        s.commit()
        job_id = f"outbox-{row.id}"
    conn.delete(f"rq:job:{job_id}")
    relay_once(sessions, conn, settings.database_url)
    blocker = sessions()
    if db_url.startswith("sqlite"):
        blocker.connection().exec_driver_sql(
            f"UPDATE callback SET updated_at = updated_at WHERE id = {callback_id}"
        )
    else:
        blocker.execute(
            text("SELECT id FROM callback WHERE id = :id FOR UPDATE"), {"id": callback_id}
        )
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "worker", "--without-scheduler"],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Job.fetch(job_id, connection=conn).get_status(refresh=True).value == "started":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("place_callback never started")
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        blocker.rollback()
        blocker.close()
    with sessions() as s:
        assert s.get(Callback, callback_id).status == "scheduled"
    assert reconcile_once(sessions, conn, now=utcnow() + ABANDONED_AFTER)["requeued"] >= 1
    run_jobs(conn, utcnow() + timedelta(minutes=10))
    run_jobs(conn, utcnow() + timedelta(minutes=20))
    with sessions() as s:
        assert s.get(Callback, callback_id).status == "in_progress"
        assert len(s.scalars(select(CallbackAttempt)).all()) == 1
        assert len(s.scalars(select(Call)).all()) == 1
