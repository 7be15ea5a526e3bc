"""One logging set-up: JSON lines in production, text in a terminal, ids on every line of a piece of
work, and no resident's phone number or email address at INFO."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from intake.logging_setup import configure, mask
from voice.simulator import HANGUP

PHONE = "+886912345678"
EMAIL = "chen.yu@example.tw"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The production set-up (JSON lines) writing into a buffer; removed afterwards."""
    buffer = io.StringIO()
    configure(fmt="json", stream=buffer)
    yield buffer
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "hotline"]:
        root.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"call from {PHONE}", "call from +88********78"),
        ("0912-345-678 called", "09******78 called"),
        (f"mail from {EMAIL}", "mail from c***@example.tw"),
        ("due 2026-12-01 10:00:00 for HL-000123 via 127.0.0.1", None),
    ],
)
def test_it_masks_contact_details_and_nothing_else(text, masked):
    assert mask(text) == (masked or text)


def test_a_webhook_has_its_request_id_on_its_lines_and_contact_details_masked(
    world, demo, captured
):
    forged = world.web.post(
        "/voice/incoming",
        data={"CallSid": "CAforged", "From": PHONE},
        headers={"X-Request-Id": "req-from-proxy-1"},
    )
    assert forged.status_code == 403
    assert forged.headers["X-Request-Id"] == "req-from-proxy-1"
    world.call([HANGUP], caller=PHONE)
    world.send_mail(sender=f"陳宇 <{EMAIL}>", subject="電梯故障", body="A棟電梯停在三樓不動了。")
    world.drain()

    written = lines(captured)
    rejected = [line for line in written if "rejected a voice webhook" in line["msg"]]
    assert rejected and rejected[0]["request_id"] == "req-from-proxy-1"
    assert rejected[0]["level"] == "warning" and rejected[0]["logger"] == "voice.webhooks"
    stored = [line for line in written if line["msg"].startswith("stored mail")]
    assert stored and "c***@example.tw" in stored[0]["msg"]
    text = captured.getvalue()
    assert PHONE not in text and EMAIL not in text
    assert "電梯" not in text, "message text stays out of the logs"


def test_a_worker_writes_json_lines_with_the_job_id(env, demo, sessions):
    from intake.service import receive
    from tests.factories import email_contact

    receive(sessions, email_contact(sender_email=EMAIL), demo.config)
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", "worker", "--burst"],
        env={**os.environ, **env, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = [json.loads(line) for line in result.stderr.splitlines()]
    assert written, "the worker logged its jobs"
    of_jobs = [line for line in written if "job_id" in line]
    assert any(line["job_id"].startswith("outbox-") for line in of_jobs)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in written)
    assert EMAIL not in result.stderr


def test_a_terminal_gets_readable_text_with_the_ids():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    configure(stream=screen)
    try:
        from intake.logging_setup import bind

        with bind(job_id="outbox-7"):
            logging.getLogger("worker.jobs").info("routed ticket for %s", PHONE)
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "hotline"]:
            root.removeHandler(handler)
    shown = screen.getvalue()
    assert "INFO" in shown and "worker.jobs: routed ticket for +88********78" in shown
    assert "[job_id=outbox-7]" in shown and not shown.startswith("{")
