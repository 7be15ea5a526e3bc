"""A bounded fault run on PostgreSQL and Redis with real processes: mail arrives through the real
SMTP listener while a `hotline worker` (of two) is SIGKILLed and started again, and Redis is
killed and started again empty. At the end: every message exactly one ticket, every
acknowledgement in the outbox exactly once, no row stuck in `sending`, nothing failed for good."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.worker.test_reliability import RedisProcess, free_port, kill, spawn_worker, wait_for
from worker.replies import ACK_TEMPLATE

MESSAGES = 24


def _mail(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Resident {i} <resident{i}@example.com>"
    msg["To"] = "complaints@hotline.localhost"
    msg["Subject"] = f"Kitchen leak in flat {i}"
    msg["Message-ID"] = f"<fault-{i}@example.com>"
    msg.set_content(f"Water is leaking from the kitchen ceiling of flat {i}. Please send someone.")
    return msg


def _scalar(sessions: Any, sql: str) -> Any:
    with sessions() as s:
        return s.scalar(text(sql))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mail_keeps_flowing_through_worker_kills_and_a_redis_restart(
    demo, sessions, env, db_url, tmp_path: Path, smtp_sink
):
    if not db_url.startswith("postgresql"):
        pytest.skip("the fault run is on PostgreSQL")
    redis = RedisProcess(tmp_path)
    redis.start()
    port = free_port()
    env = {**env, "REDIS_URL": redis.url, "SMTP_URL": smtp_sink.url, "SMTPD_PORT": str(port)}
    listener = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "smtpd"],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "smtpd.log").open("ab"),
    )
    workers = [spawn_worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
    started = time.monotonic()
    try:

        def listening() -> bool:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_for(listening, 30, "the SMTP listener")
        for i in range(MESSAGES):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.send_message(_mail(i))
            if i == 6:
                kill(workers[0])  # mid-flow: routing, acknowledging or sending
                workers[0] = spawn_worker(env, tmp_path / "worker0.log")
            if i == 12:
                redis.kill()  # without a data file: every queued job is lost
            if i == 15:
                redis.start()
            time.sleep(0.3)

        def settled() -> bool:
            open_rows = _scalar(
                sessions, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'enqueued')"
            )
            sending = _scalar(
                sessions, "SELECT count(*) FROM outgoing_message WHERE status = 'sending'"
            )
            tickets = _scalar(sessions, "SELECT count(*) FROM ticket")
            return open_rows == 0 and sending == 0 and tickets == MESSAGES

        wait_for(settled, 150, "everything to settle", step=1)
        recovered = time.monotonic() - started
    finally:
        for proc in (*workers, listener):
            kill(proc, signal.SIGTERM)
        redis.kill()
    print(f"settled {recovered:.0f} s after the first message")
    assert _scalar(sessions, "SELECT count(*) FROM ticket") == MESSAGES
    assert (
        _scalar(
            sessions,
            "SELECT count(DISTINCT ticket_id) FROM interaction"
            " WHERE channel = 'email' AND direction = 'in'",
        )
        == MESSAGES
    )
    acks = _scalar(
        sessions,
        "SELECT count(*) FROM outgoing_message"
        f" WHERE template = '{ACK_TEMPLATE}' AND channel = 'email'",
    )
    ack_tickets = _scalar(
        sessions,
        f"SELECT count(DISTINCT ticket_id) FROM outgoing_message WHERE template = '{ACK_TEMPLATE}'",
    )
    assert acks == ack_tickets == MESSAGES
    assert _scalar(sessions, "SELECT count(*) FROM outgoing_message WHERE status = 'sending'") == 0
    assert _scalar(sessions, "SELECT count(*) FROM outbox WHERE status = 'failed'") == 0
    delivered = {rcpt for d in smtp_sink.delivered for rcpt in d.rcpt_tos}
    assert {f"resident{i}@example.com" for i in range(MESSAGES)} <= delivered
