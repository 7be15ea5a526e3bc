"""The `hotline` command line. Core commands live here; channels add theirs through the
`hotline.commands` entry-point group, so the core never imports a channel."""

from __future__ import annotations

import csv
import json
import re
import sys
import unicodedata
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake.config import ConfigError, Settings, get_settings
from intake.plugins import plugin_commands

if TYPE_CHECKING:
    from intake.audit import Actor


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")
CELL_WIDTH = 48


def cell(value: Any, width: int = CELL_WIDTH) -> str:
    """One table cell: local times as `YYYY-MM-DD HH:MM`, one line, at most `width` characters."""
    if value is None or value == "":
        return "-"
    text = str(value)
    match = ISO_TIME.match(text)
    if match:
        return f"{match.group(1)} {match.group(2)}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _width(text: str) -> int:
    """Columns a terminal gives `text`: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Rows as a text table with a header row; one line per row whatever the values hold."""
    if not rows:
        return "(none)"
    columns = columns or [k for k, v in rows[0].items() if not isinstance(v, dict | list)]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(_width(h), *(_width(r[i]) for r in cells)) for i, h in enumerate(columns)]
    lines = []
    for values in [columns, *cells]:
        padded = [v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def cli_actor() -> Actor:
    """The audit fields for a command typed on a machine: the system user, from the command line."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"actor": f"{user}@{socket.gethostname()}", "role": "cli", "source": "command line"}


def note_config_changes(settings: Settings) -> None:
    """Records in the audit log how the configuration differs from what the database last saw.

    A database that is down or not yet migrated does not stop a process from starting: the change
    is recorded by the next start that reaches it."""
    import logging

    from sqlalchemy.exc import SQLAlchemyError

    from intake.config_audit import note_changes
    from intake.db import session_scope

    try:
        with session_scope(settings.database_url) as session:
            note_changes(session, settings, **cli_actor())
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning(
            "configuration changes not checked: %s", str(exc).splitlines()[0][:200]
        )


def emit(data: Any, fmt: str, columns: list[str] | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    elif isinstance(data, list):
        click.echo(table(data, columns))
    else:
        for k, v in data.items():
            if not isinstance(v, dict | list):
                click.echo(f"{k}: {cell(v, 200) if v is not None else '-'}")
        for k, v in data.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                click.echo(f"\n{k}:")
                click.echo(table(v))


class HotlineGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or plugin_commands().get(name)


@click.group(cls=HotlineGroup)
def main() -> None:
    """Hotline: calls and complaint mail in one ticket queue."""
    from intake.logging_setup import configure

    if sys.stderr is sys.__stderr__:  # run in-process (click's CliRunner): the host owns logging
        configure()


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
    note_config_changes(settings)
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
    from intake import audit
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
        before = (op.role, op.department.code if op and op.department else None) if op else None
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
        if before is None:
            audit.record(
                session, "operator_created", **cli_actor(), target=email.lower(), role_given=role
            )
        else:
            after = (role, department)
            changed = {
                field: [was, now]
                for field, was, now in zip(("role", "department"), before, after, strict=True)
                if was != now
            }
            audit.record(
                session,
                "operator_changed",
                **cli_actor(),
                target=email.lower(),
                changed=changed,
                password_changed=True,
            )
    click.echo(f"{verb} {role} {email}")


@main.group()
def tickets() -> None:
    """Look at tickets."""


TICKET_COLUMNS = [
    "ref",
    "priority",
    "status",
    "channel",
    "category",
    "department",
    "subject",
    "created_at",
]
CALLBACK_COLUMNS = [
    "id",
    "ticket_ref",
    "purpose",
    "phone",
    "due_at",
    "status",
    "attempts",
    "outcome",
    "claimed_by",
]
OUTBOX_COLUMNS = ["id", "ticket_ref", "channel", "to", "status", "subject", "created_at"]


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
    emit(rows, fmt, TICKET_COLUMNS)


@tickets.command("show")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def tickets_show(ref: str, fmt: str) -> None:
    from intake.db import session_scope
    from intake.serialize import ticket_detail_json

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        ticket = find_ticket(session, ref, settings.config.ticket_prefix)
        if ticket is None:
            click.echo(
                f"no ticket {ref} (give its reference, such as HL-000001, or its number)", err=True
            )
            sys.exit(1)
        data = ticket_detail_json(ticket, settings.config)
    emit(data, fmt)


def find_ticket(session: Any, ref: str, prefix: str) -> Any:
    """A ticket by its reference (`HL-000001`, any case) or by its number (`1`, `000001`)."""
    from intake.models import Ticket
    from intake.tickets import format_ref

    wanted = ref.strip().upper()
    if wanted.isdigit() and 0 < int(wanted) < 2**31:
        wanted = format_ref(prefix, int(wanted))
    return session.scalar(select(Ticket).where(Ticket.ref == wanted))


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
            .options(selectinload(Callback.ticket), selectinload(Callback.claimer))
            .order_by(Callback.due_at, Callback.id)
        )
        if status:
            query = query.where(Callback.status == status)
        rows = [callback_json(c, settings.config) for c in session.scalars(query)]
    emit(rows, fmt, CALLBACK_COLUMNS)


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
    emit(rows, fmt, OUTBOX_COLUMNS)


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


@main.group("reports")
def reports_group() -> None:
    """The dashboard's daily roll-up."""


@reports_group.command("rollup")
@click.option("--all", "everything", is_flag=True, help="rewrite every day since the first ticket")
@click.option("--days", default=0, show_default=True, help="also the last N days again")
def reports_rollup(everything: bool, days: int) -> None:
    """Bring the roll-up up to date: changed days, missing days (90 at most without --all)."""
    from intake.db import session_factory
    from intake.rollup import refresh

    settings = settings_or_exit()
    with session_factory(settings.database_url)() as session:
        result = refresh(session, settings.config, recent_days=days, everything=everything)
    if result.written:
        click.echo(
            f"{len(result.written)} day(s) written, {result.written[0]} to {result.written[-1]}"
        )
    else:
        click.echo("the roll-up is up to date")


@main.group()
def operators() -> None:
    """The operators' desk: who is available for live calls."""


@operators.command("state")
@click.argument("email")
@click.argument("state", type=click.Choice(["available", "away"]))
@click.option("--languages", default=None, help="Spoken languages, e.g. zh-Hant,yue,en.")
@click.option("--device", default=None, help="Phone number, sip: or client: address to ring.")
def operators_state(email: str, state: str, languages: str | None, device: str | None) -> None:
    """Set an operator's presence (as the console header does)."""
    from intake import desk
    from intake.db import session_scope
    from intake.models import Operator

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        operator = session.scalar(select(Operator).where(Operator.email == email.lower()))
        if operator is None:
            raise click.ClickException(f"no operator {email}")
        langs = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
        row = desk.set_state(session, operator, state, languages=langs, device=device)
        desk.distribute(session, settings.config)
        click.echo(f"{operator.email}: {row.state}")


@operators.command("list")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def operators_list(fmt: str) -> None:
    """Every desk operator's state, languages and device."""
    from intake import desk
    from intake.db import session_scope

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        rows = desk.operators_list(session)
    emit(rows, fmt)


if __name__ == "__main__":
    main()
