"""Helpers for tests that start real processes: a free port, waiting on a condition, and
`hotline up` started as the README tells a person to (its own folder, SQLite, bundled Redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

CLI = [sys.executable, "-m", "intake.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    """The predicate's first true result, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class HotlineUp:
    """`hotline up --port N` in `folder` on the embedded defaults, with the demo seeded.

    The test's own database, Redis and Twilio settings are left out of the environment, so the
    children use the folder's SQLite file and their own Redis, and the local signing token."""

    def __init__(self, folder: Path, *, config: Path | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{folder / 'var' / 'hotline.db'}"
        self.log_path = folder / "up.log"
        left_out = (
            "DATABASE_URL",
            "REDIS_URL",
            "HOTLINE_CONFIG",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_ACCOUNT_SID",
        )
        self.env = {k: v for k, v in os.environ.items() if k not in left_out}
        self.env.update({"HOTLINE_DATA_DIR": str(folder / "var"), "PUBLIC_BASE_URL": self.url})
        if config is not None:
            self.env["HOTLINE_CONFIG"] = str(config)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None

    def hotline(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Runs one `hotline` command beside the running service, as a person would."""
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Starts one `hotline` command that runs alongside the test (stdout and stderr merged)."""
        return subprocess.Popen(
            [*CLI, *args],
            env=self.env,
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def start(self) -> HotlineUp:
        seeded = self.hotline("seed-demo")
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*CLI, "up", "--port", str(self.port)],
            env=self.env,
            cwd=self.folder,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_until_serving(self) -> None:
        wait_for(self._healthy, 90, "the web server", step=0.3)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; the exit code `hotline up` gave."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=60)
        if self._log is not None:
            self._log.close()
        return code

    def __enter__(self) -> HotlineUp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.stop()
