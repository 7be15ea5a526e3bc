"""`hotline api-token`: create, list and revoke API clients. A token is printed once, never stored."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from web.api.auth import ROLES


@click.group("api-token")
def api_token() -> None:
    """Tokens for programs using the JSON API or Open311 (api_key)."""


@api_token.command("create")
@click.option("--name", required=True, help="Who uses the token (unique).")
@click.option(
    "--role",
    default="operator",
    show_default=True,
    type=click.Choice(ROLES),
    help="readonly: read tickets, callbacks, residents; operator: also change them and file "
    "Open311 requests; open311: only file and follow Open311 requests; supervisor: an "
    "operator's rights, and declare, update and resolve building-wide incidents.",
)
@click.option("--department", default=None, help="Restrict the client to one department's tickets.")
def create_cmd(name: str, role: str, department: str | None) -> None:
    """Create a client and print its token (shown only this once)."""
    from intake import audit
    from intake.cli import cli_actor, settings_or_exit
    from intake.db import session_scope
    from web.api.auth import create_client

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        try:
            created = create_client(session, name, role, department)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(session, "api_token_created", **cli_actor(), target=name, role_given=role)
        session.commit()
        click.echo(created.token)
        click.echo(
            f"API client {created.client.name!r} ({role}) created; keep the token above, "
            "it is not shown again.",
            err=True,
        )


@api_token.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_cmd(fmt: str) -> None:
    """Clients with their role, department and token prefix (never the token)."""
    from intake.cli import settings_or_exit
    from intake.db import session_scope
    from intake.models import ApiClient
    from intake.serialize import iso

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        rows = [
            {
                "name": c.name,
                "role": c.role,
                "department": c.department.code if c.department else None,
                "active": c.active,
                "token_prefix": c.token_prefix,
                "created_at": iso(c.created_at, settings.config),
                "last_used_at": iso(c.last_used_at, settings.config),
            }
            for c in session.scalars(select(ApiClient).order_by(ApiClient.name))
        ]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        state = "active" if row["active"] else "revoked"
        click.echo(
            f"{row['name']}\t{row['role']}\t{row['department'] or '-'}\t{state}\t{row['token_prefix']}…"
        )


@api_token.command("revoke")
@click.option("--name", required=True)
def revoke_cmd(name: str) -> None:
    """Deactivate a client: its token stops working at once."""
    from intake import audit
    from intake.cli import cli_actor, settings_or_exit
    from intake.db import session_scope
    from intake.models import ApiClient

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        client = session.scalar(select(ApiClient).where(ApiClient.name == name))
        if client is None:
            raise click.ClickException(f"no API client named {name!r}")
        client.active = False
        audit.record(session, "api_token_revoked", **cli_actor(), target=name)
        session.commit()
    click.echo(f"API client {name!r} revoked")


def commands() -> list[click.Command]:
    return [api_token]
