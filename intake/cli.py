"""The `hotline` command line. Core commands live here; channels add theirs through the
`hotline.commands` entry-point group, so the core never imports a channel."""

from __future__ import annotations

import csv
import json
import sys
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake.config import ConfigError, Settings, get_settings


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


def emit(data: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    elif isinstance(data, list):
        for row in data:
            click.echo(
                "  ".join(
                    str(v) if v is not None else "-"
                    for k, v in row.items()
                    if not isinstance(v, dict | list)
                )
            )
    else:
        for k, v in data.items():
            if not isinstance(v, dict | list):
                click.echo(f"{k}: {v}")


@lru_cache(maxsize=1)
def plugin_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for ep in entry_points(group="hotline.commands"):
        loaded = ep.load()
        for cmd in (
            loaded() if callable(loaded) and not isinstance(loaded, click.Command) else [loaded]
        ):
            found[cmd.name] = cmd
    return found


class HotlineGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or plugin_commands().get(name)


@click.group(cls=HotlineGroup)
def main() -> None:
    """Hotline: calls and complaint mail in one ticket queue."""


@main.command("init-db")
def init_db() -> None:
    """Upgrade the database to the newest schema and load departments from the configuration."""
    from intake.db import session_scope
    from intake.migrate import upgrade_to_head
    from intake.tickets import sync_departments

    settings = settings_or_exit()
    upgrade_to_head(settings.database_url)
    with session_scope(settings.database_url) as session:
        sync_departments(session, settings.config)
    click.echo(f"database ready: {settings.database_url.split('@')[-1]}")


@main.command("seed-demo")
def seed_demo_cmd() -> None:
    """Create demonstration departments, operators, buildings, units and residents."""
    from intake.db import session_scope
    from intake.demo import DEMO_OPERATORS, DEMO_PASSWORD, seed_demo
    from intake.migrate import upgrade_to_head

    settings = settings_or_exit()
    upgrade_to_head(settings.database_url)
    with session_scope(settings.database_url) as session:
        added = seed_demo(session, settings.config)
    click.echo("added " + ", ".join(f"{n} {k}" for k, n in added.items()))
    click.echo(
        "logins (password " + DEMO_PASSWORD + "): " + ", ".join(e for e, *_ in DEMO_OPERATORS)
    )


@main.command("create-operator")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option(
    "--role", type=click.Choice(["operator", "supervisor", "admin", "department"]), required=True
)
@click.option("--name", default=None)
@click.option("--department", default=None, help="department code, for department staff")
@click.option("--language", type=click.Choice(["zh-Hant", "zh-Hans", "en"]), default="zh-Hant")
def create_operator(
    email: str, password: str, role: str, name: str | None, department: str | None, language: str
) -> None:
    """Create an operator, or reset the password and role of an existing one."""
    from intake.auth import hash_password
    from intake.db import session_scope
    from intake.models import Operator
    from intake.tickets import department_by_code

    if role == "department" and not department:
        raise click.BadParameter(
            "department staff need a department (--department CODE)", param_hint="--department"
        )
    settings = settings_or_exit()
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--password") from None
    with session_scope(settings.database_url) as session:
        dept_id = None
        if department:
            try:
                dept_id = department_by_code(session, department, settings.config).id
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--department") from None
        op = session.scalar(select(Operator).where(Operator.email == email.lower()))
        if op is None:
            op = Operator(
                email=email.lower(),
                name=name or email.split("@")[0],
                password_hash=hashed,
                role=role,
                department_id=dept_id,
                language=language,
            )
            session.add(op)
            verb = "created"
        else:
            op.password_hash, op.role, op.department_id, op.language = (
                hashed,
                role,
                dept_id,
                language,
            )
            # A new password or role ends the operator's signed-in sessions.
            op.session_generation = (op.session_generation or 0) + 1
            verb = "updated"
    click.echo(f"{verb} {role} {email}")


@main.group()
def tickets() -> None:
    """Look at tickets."""


@tickets.command("list")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
@click.option("--status", default=None)
@click.option("--limit", default=100, show_default=True)
def tickets_list(fmt: str, status: str | None, limit: int) -> None:
    from intake.db import session_scope
    from intake.models import Ticket
    from intake.serialize import ticket_json

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        query = (
            select(Ticket)
            .options(selectinload(Ticket.department), selectinload(Ticket.resident))
            .order_by(Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(Ticket.status == status)
        rows = [ticket_json(t, settings.config) for t in session.scalars(query)]
    emit(rows, fmt)


@tickets.command("show")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def tickets_show(ref: str, fmt: str) -> None:
    from intake.db import session_scope
    from intake.models import Ticket
    from intake.serialize import ticket_detail_json

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref.upper()))
        if ticket is None:
            click.echo(f"no ticket {ref}", err=True)
            sys.exit(1)
        data = ticket_detail_json(ticket, settings.config)
    emit(data, fmt)


@main.group()
def callbacks() -> None:
    """Look at callbacks."""


@callbacks.command("list")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
@click.option("--status", default=None)
def callbacks_list(fmt: str, status: str | None) -> None:
    from intake.db import session_scope
    from intake.models import Callback
    from intake.serialize import callback_json

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        query = (
            select(Callback)
            .options(selectinload(Callback.ticket))
            .order_by(Callback.due_at, Callback.id)
        )
        if status:
            query = query.where(Callback.status == status)
        rows = [callback_json(c, settings.config) for c in session.scalars(query)]
    emit(rows, fmt)


@main.group()
def outbox() -> None:
    """Outgoing messages (kept here when no SMTP relay is configured)."""


@outbox.command("list")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def outbox_list(fmt: str) -> None:
    from intake.db import session_scope
    from intake.models import OutgoingMessage
    from intake.serialize import outgoing_json

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        rows = [
            outgoing_json(m, session, settings.config)
            for m in session.scalars(select(OutgoingMessage).order_by(OutgoingMessage.id))
        ]
    emit(rows, fmt)


@main.command("import-residents")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="validate and report, change nothing")
def import_residents_cmd(path: str, dry_run: bool) -> None:
    """Import residents from CSV (name, language, building, unit, phone, email)."""
    from intake.db import session_scope
    from intake.residents import import_residents

    settings = settings_or_exit()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with session_scope(settings.database_url) as session:
        report = import_residents(session, rows, settings.config, dry_run=dry_run)
        if dry_run:
            session.rollback()
    for err in report.errors:
        click.echo(f"line {err.line}: {err.message}", err=True)
    click.echo(
        f"{'would import' if dry_run else 'imported'} {report.created} new, {report.updated} updated, {len(report.errors)} errors"
    )
    if report.errors:
        sys.exit(1)


@main.command("up")
@click.option("--port", default=5000, show_default=True)
def up(port: int) -> None:
    """Run everything on embedded defaults: database, Redis, web, worker, SMTP listener."""
    from intake.supervisor import run_up

    sys.exit(run_up(settings_or_exit(), port))


if __name__ == "__main__":
    main()
