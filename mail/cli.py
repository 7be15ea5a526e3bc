"""Mail commands for `hotline`: `poll-imap`, `smtpd`, and `mail replay|quarantine|health`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click
from sqlalchemy import select


def _settings() -> Any:
    from intake.cli import settings_or_exit

    return settings_or_exit()


def _logging() -> None:
    """The one set-up (`intake.logging_setup`), already installed by `hotline` itself."""
    from intake.logging_setup import configure

    if not any(h.get_name() == "hotline" for h in logging.getLogger().handlers):
        configure()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    return stop


@click.command("poll-imap")
@click.option("--once", is_flag=True, help="one pass over every mailbox, then exit")
def poll_imap(once: bool) -> None:
    """Fetch complaint mail from every IMAP_URL mailbox into tickets."""
    from imapclient.exceptions import LoginError

    from intake.db import session_factory
    from mail.imap import pollers

    settings = _settings()
    _logging()
    if not settings.imap_urls:
        click.echo("IMAP_URL is not set: nothing to poll", err=True)
        sys.exit(2)
    sessions = session_factory(settings.database_url)
    found = pollers(settings, sessions)
    if once:
        failed = False
        for poller in found:
            try:
                stored = poller.run_once()
                click.echo(f"{poller.account.key}: {stored} new")
            except LoginError as exc:
                click.echo(f"{poller.account.key}: login failed: {exc}", err=True)
                failed = True
            except Exception as exc:
                click.echo(f"{poller.account.key}: {type(exc).__name__}: {exc}", err=True)
                failed = True
        sys.exit(1 if failed else 0)
    stop = _stop_on_signals()
    threads = [
        threading.Thread(target=p.run_forever, args=(stop,), name=f"imap {p.account.key}")
        for p in found
    ]
    for thread in threads:
        thread.start()
    click.echo(f"polling {len(threads)} mailbox(es); Ctrl-C stops")
    while not stop.wait(1.0):
        pass
    for thread in threads:
        thread.join()


@click.command("smtpd")
@click.option("--host", default=None, help="default SMTPD_HOST")
@click.option("--port", type=int, default=None, help="default SMTPD_PORT")
def smtpd(host: str | None, port: int | None) -> None:
    """Accept complaint mail over SMTP (MAIL_FROM and mail.aliases only)."""
    from intake.config import ConfigError
    from intake.db import session_factory
    from mail.smtpd import start_listener

    settings = _settings()
    _logging()
    try:
        listener = start_listener(
            session_factory(settings.database_url), settings, host=host, port=port
        )
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    addresses = ", ".join(sorted(listener.handler.accepted))
    click.echo(f"SMTP listener on {host or settings.smtpd_host}:{listener.port} for {addresses}")
    stop = _stop_on_signals()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        listener.stop()


@click.group("mail")
def mail_group() -> None:
    """Stored inbound mail: quarantine, replay, channel health."""


@mail_group.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="a stored message id (repeatable)")
@click.option("--all", "everything", is_flag=True, help="every quarantined or unprocessed message")
def replay_cmd(ids: tuple[int, ...], everything: bool) -> None:
    """Process stored messages again (after a parser fix, or a quarantine reason resolved)."""
    from intake.db import session_factory
    from mail.store import replay

    if not ids and not everything:
        click.echo("say which: --id N or --all", err=True)
        sys.exit(2)
    settings = _settings()
    results = replay(
        session_factory(settings.database_url), settings, ids, everything_quarantined=everything
    )
    for raw_id, outcome in results:
        click.echo(f"{raw_id}: {outcome}")
    if any(outcome.startswith(("quarantined", "not now", "no such")) for _, outcome in results):
        sys.exit(1)


@mail_group.command("quarantine")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def quarantine_cmd(fmt: str) -> None:
    """List quarantined messages with their reasons."""
    from intake.cli import emit
    from intake.db import session_scope
    from intake.models import RawMessage
    from intake.serialize import iso

    settings = _settings()
    with session_scope(settings.database_url) as session:
        rows = [
            {
                "id": r.id,
                "source": r.source,
                "mailbox": r.mailbox,
                "message_id": r.message_id,
                "size": r.size,
                "received_at": iso(r.received_at, settings.config),
                "reason": r.reason,
            }
            for r in session.scalars(
                select(RawMessage).where(RawMessage.status == "quarantined").order_by(RawMessage.id)
            )
        ]
    emit(rows, fmt)


@mail_group.command("health")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def health_cmd(fmt: str) -> None:
    """What each mail channel last did (IMAP pollers, SMTP intake, acknowledgement breaker).

    Times are the centre's local time with their offset, like every other command.
    """
    from sqlalchemy import func

    from intake.cli import emit
    from intake.db import session_scope
    from intake.models import ChannelHealth, RawMessage
    from intake.serialize import iso

    settings = _settings()
    config = settings.config
    with session_scope(settings.database_url) as session:
        rows = [
            {
                "name": h.name,
                "status": h.status,
                "last_ok_at": iso(h.last_ok_at, config),
                "last_error_at": iso(h.last_error_at, config),
                "last_error": h.last_error,
                "consecutive_failures": h.consecutive_failures,
                "detail": h.detail,
            }
            for h in session.scalars(select(ChannelHealth).order_by(ChannelHealth.name))
        ]
        if not any(str(r["name"]).startswith("smtp") for r in rows):
            count, last = session.execute(
                select(func.count(), func.max(RawMessage.received_at)).where(
                    RawMessage.source == "smtp"
                )
            ).one()
            rows.append(
                {
                    "name": "smtp intake",
                    "status": "ok" if count else "nothing received yet",
                    "last_ok_at": iso(last, config),
                    "last_error_at": None,
                    "last_error": None,
                    "consecutive_failures": 0,
                    "detail": {"messages_received": count},
                }
            )
    emit(
        rows,
        fmt,
        ["name", "status", "last_ok_at", "last_error_at", "consecutive_failures", "last_error"],
    )


def commands() -> list[click.Command]:
    return [poll_imap, smtpd, mail_group]
