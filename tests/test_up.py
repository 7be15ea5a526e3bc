"""`hotline up` on embedded defaults: SQLite file, its own Redis, web and worker; Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from intake.config import load_config
from intake.db import session_factory
from intake.service import receive
from tests.factories import email_contact


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def pids_in_group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


@pytest.mark.slow
def test_hotline_up_serves_the_queue_and_routes_a_ticket_then_stops_cleanly(tmp_path: Path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "HOTLINE_CONFIG")
    }
    env.update(
        {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    )
    cli = [sys.executable, "-m", "intake.cli"]
    subprocess.run(
        [*cli, "seed-demo"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120
    )
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [*cli, "up", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def healthy():
            try:
                return (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
                    == 200
                )
            except OSError:
                return False

        wait_for(healthy, 90, "the web server")
        sessions = session_factory(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}")
        receipt = receive(sessions, email_contact(), load_config())

        def routed():
            out = subprocess.run(
                [*cli, "tickets", "show", receipt.ticket_ref, "--format", "json"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return (
                out.returncode == 0
                and json.loads(out.stdout)["status"] == "routed"
                and json.loads(out.stdout)
            )

        shown = wait_for(routed, 90, "the worker to route the ticket")
        assert shown["department"] == "engineering"

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"http://127.0.0.1:{port}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = (
            f"email=operator%40hotline.localhost&password=hotline-demo&csrf_token={token}".encode()
        )
        queue = opener.open(f"http://127.0.0.1:{port}/login", data=body, timeout=10).read().decode()
        assert receipt.ticket_ref in queue
        output = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{port}/" in output and "hotline-demo" in output
    finally:
        os.kill(up.pid, signal.SIGINT)
        code = up.wait(timeout=60)
        log.close()
    assert code == 0
    wait_for(lambda: not pids_in_group(up.pid) or None, 30, "every child to stop") if pids_in_group(
        up.pid
    ) else None
    assert "stopped" in (tmp_path / "up.log").read_text()


@pytest.mark.slow
def test_hotline_up_restarts_a_child_that_dies_and_keeps_the_others(tmp_path: Path):
    """Issue 12 item 12: `hotline up` stopped everything when one child exited."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "HOTLINE_CONFIG")
    }
    env.update(
        {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    )
    cli = [sys.executable, "-m", "intake.cli"]
    subprocess.run(
        [*cli, "seed-demo"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120
    )
    log_path = tmp_path / "up.log"
    log = log_path.open("w")
    up = subprocess.Popen(
        [*cli, "up", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        first = int(
            wait_for(
                lambda: re.search(r"started worker \(pid (\d+)\)", log_path.read_text()),
                90,
                "the worker to start",
            ).group(1)
        )
        web = int(re.search(r"started web \(pid (\d+)\)", log_path.read_text()).group(1))
        time.sleep(3)
        os.killpg(first, signal.SIGKILL)
        second = int(
            wait_for(
                lambda: re.search(r"restarted worker \(pid (\d+)\)", log_path.read_text()),
                30,
                "the worker to be restarted",
            ).group(1)
        )
        assert second != first and up.poll() is None
        assert "worker exited with -9; restarting it in 1 s" in log_path.read_text()
        assert "restarted web" not in log_path.read_text()
        os.kill(web, 0)  # the web server kept running
        sessions = session_factory(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}")
        receipt = receive(sessions, email_contact(), load_config())

        def routed():
            out = subprocess.run(
                [*cli, "tickets", "show", receipt.ticket_ref, "--format", "json"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return out.returncode == 0 and json.loads(out.stdout)["status"] == "routed"

        wait_for(routed, 90, "the restarted worker to route a ticket")
    finally:
        os.kill(up.pid, signal.SIGINT)
        code = up.wait(timeout=60)
        log.close()
    assert code == 0 and "stopped" in log_path.read_text()
