"""`hotline up` on embedded defaults: SQLite file, its own Redis, web and worker; Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from intake.config import load_config
from intake.db import session_factory
from intake.service import receive
from tests.factories import email_contact
from tests.processes import HotlineUp, wait_for


def pids_in_group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def routed_ticket(up: HotlineUp, ref: str) -> dict[str, object] | None:
    """The ticket as `hotline tickets show` prints it, once the worker has routed it."""
    out = up.hotline("tickets", "show", ref, "--format", "json", timeout=60)
    shown = json.loads(out.stdout) if out.returncode == 0 else None
    return shown if shown and shown["status"] == "routed" else None


@pytest.mark.slow
def test_hotline_up_serves_the_queue_and_routes_a_ticket_then_stops_cleanly(
    tmp_path: Path,
) -> None:
    up = HotlineUp(tmp_path)
    with up.start():
        up.wait_until_serving()
        sessions = session_factory(up.database_url)
        receipt = receive(sessions, email_contact(), load_config())

        shown = wait_for(
            lambda: routed_ticket(up, receipt.ticket_ref), 90, "the worker to route the ticket", 0.3
        )
        assert shown["department"] == "engineering"

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"{up.url}/login", timeout=10).read().decode()
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found is not None
        body = (
            "email=operator%40hotline.localhost&password=hotline-demo"
            f"&csrf_token={found.group(1)}".encode()
        )
        queue = opener.open(f"{up.url}/login", data=body, timeout=10).read().decode()
        assert receipt.ticket_ref in queue
        assert f"{up.url}/" in up.log() and "hotline-demo" in up.log()
        code = up.stop()
    assert code == 0
    assert up.process is not None
    group = up.process.pid
    wait_for(lambda: not pids_in_group(group), 30, "every child to stop")
    assert "stopped" in up.log()


@pytest.mark.slow
def test_hotline_up_restarts_a_child_that_dies_and_keeps_the_others(tmp_path: Path) -> None:
    """Issue 12 item 12: `hotline up` stopped everything when one child exited."""
    up = HotlineUp(tmp_path)
    with up.start():
        first = int(
            wait_for(
                lambda: re.search(r"started worker \(pid (\d+)\)", up.log()),
                90,
                "the worker to start",
                0.3,
            ).group(1)
        )
        web = re.search(r"started web \(pid (\d+)\)", up.log())
        assert web is not None
        time.sleep(3)
        os.killpg(first, signal.SIGKILL)
        second = int(
            wait_for(
                lambda: re.search(r"restarted worker \(pid (\d+)\)", up.log()),
                30,
                "the worker to be restarted",
                0.3,
            ).group(1)
        )
        assert up.process is not None
        assert second != first and up.process.poll() is None
        assert "worker exited with -9; restarting it in 1 s" in up.log()
        assert "restarted web" not in up.log()
        os.kill(int(web.group(1)), 0)  # the web server kept running
        sessions = session_factory(up.database_url)
        receipt = receive(sessions, email_contact(), load_config())
        wait_for(
            lambda: routed_ticket(up, receipt.ticket_ref),
            90,
            "the restarted worker to route a ticket",
            0.3,
        )
        code = up.stop()
    assert code == 0 and "stopped" in up.log()
