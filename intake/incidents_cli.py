"""`hotline incidents declare|update|resolve|list|show|link|unlink`: building-wide incidents."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import NoReturn

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.cli import emit, settings_or_exit
from intake.config import HotlineConfig
from intake.models import Incident

ACTOR = "cli"


def _moment(value: str | None, config: HotlineConfig, name: str) -> datetime | None:
    """An ISO 8601 moment; without an offset it is the centre's local time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected ISO 8601 such as 2026-12-05T18:00, got {value!r}", param_hint=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=config.timezone)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").replace("，", ",").split(",") if part.strip()]


def _texts(
    zh_hant: str | None, zh_hans: str | None, en: str | None, yue: str | None
) -> dict[str, str | None]:
    return {"zh-Hant": zh_hant, "zh-Hans": zh_hans, "en": en, "yue": yue}


def _text_options(function: click.decorators.FC) -> click.decorators.FC:
    for flag, dest in (
        ("--text-yue", "text_yue"),
        ("--text-en", "text_en"),
        ("--text-zh-hans", "text_zh_hans"),
        ("--text-zh-hant", "text_zh_hant"),
    ):
        function = click.option(flag, dest, default=None, help="description in this language")(
            function
        )
    return function


@click.group("incidents")
def incidents() -> None:
    """Building-wide incidents and planned works: declare, update, resolve, list."""


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@incidents.command("declare")
@click.option("--buildings", required=True, help="building codes, comma-separated: A,B")
@click.option("--category", required=True, help="a configured category code, e.g. repair")
@click.option("--kind", type=click.Choice(["incident", "planned"]), default="incident")
@_text_options
@click.option("--keywords", default=None, help="words that link new tickets, comma-separated")
@click.option("--units", default=None, help="only these unit labels, comma-separated")
@click.option("--starts", default=None, help="ISO 8601 start (default: now)")
@click.option("--until", default=None, help="ISO 8601 expected end")
@click.option("--notify", is_flag=True, help="tell every household by SMS and email")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def declare_cmd(
    buildings: str,
    category: str,
    kind: str,
    text_zh_hant: str | None,
    text_zh_hans: str | None,
    text_en: str | None,
    text_yue: str | None,
    keywords: str | None,
    units: str | None,
    starts: str | None,
    until: str | None,
    notify: bool,
    fmt: str,
) -> None:
    """Declare an incident (or planned works) over buildings."""
    from intake import incidents as core
    from intake.db import session_scope

    settings = settings_or_exit()
    config = settings.config
    with session_scope(settings.database_url) as session:
        try:
            incident = core.declare(
                session,
                buildings=_split(buildings),
                category=category,
                kind=kind,
                texts=_texts(text_zh_hant, text_zh_hans, text_en, text_yue),
                keywords=_split(keywords),
                units=_split(units),
                starts_at=_moment(starts, config, "--starts"),
                until=_moment(until, config, "--until"),
                notify=notify,
                config=config,
                actor=ACTOR,
            )
        except core.IncidentError as exc:
            _fail(f"cannot declare: {exc.message}")
        session.flush()
        data = core.serialize(session, incident)
    emit(data, fmt)


def _incident(session: Session, incident_id: int) -> Incident:
    found = session.get(Incident, incident_id)
    if found is None:
        _fail(f"no incident {incident_id}")
    assert found is not None
    return found


@incidents.command("update")
@click.argument("incident_id", type=int)
@_text_options
@click.option("--until", default=None, help="ISO 8601 expected end")
@click.option("--notify", is_flag=True, help="tell the households about this update")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def update_cmd(
    incident_id: int,
    text_zh_hant: str | None,
    text_zh_hans: str | None,
    text_en: str | None,
    text_yue: str | None,
    until: str | None,
    notify: bool,
    fmt: str,
) -> None:
    """New words or a new expected end for an active incident."""
    from intake import incidents as core
    from intake.db import session_scope

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        incident = _incident(session, incident_id)
        try:
            core.update(
                session,
                incident,
                actor=ACTOR,
                texts=_texts(text_zh_hant, text_zh_hans, text_en, text_yue),
                until=_moment(until, settings.config, "--until"),
                notify=notify,
            )
        except core.IncidentError as exc:
            _fail(f"cannot update: {exc.message}")
        session.flush()
        data = core.serialize(session, incident)
    emit(data, fmt)


@incidents.command("resolve")
@click.argument("incident_id", type=int)
@click.option("--note", default="", help="what was done (default: the incident's description)")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def resolve_cmd(incident_id: int, note: str, fmt: str) -> None:
    """Resolve an incident: its tickets are resolved and the all-clear is sent."""
    from intake import incidents as core
    from intake.db import session_scope

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        incident = _incident(session, incident_id)
        core.resolve(session, incident, actor=ACTOR, config=settings.config, note=note)
        session.flush()
        data = core.serialize(session, incident)
    emit(data, fmt)


@incidents.command("list")
@click.option("--status", type=click.Choice(["active", "resolved"]), default=None)
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def list_cmd(status: str | None, fmt: str) -> None:
    """Incidents, newest first, with their linked tickets and the notices sent."""
    from intake import incidents as core
    from intake.db import session_scope

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        rows = [core.serialize(session, i) for i in core.list_incidents(session, status)]
    emit(rows, fmt)


@incidents.command("show")
@click.argument("incident_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def show_cmd(incident_id: int, fmt: str) -> None:
    from intake import incidents as core
    from intake.db import session_scope

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        data = core.serialize(session, _incident(session, incident_id))
    emit(data, fmt)


@incidents.command("link")
@click.argument("incident_id", type=int)
@click.argument("refs", nargs=-1, required=True)
def link_cmd(incident_id: int, refs: tuple[str, ...]) -> None:
    """Put tickets in the incident's group by hand."""
    from intake import incidents as core
    from intake.db import session_scope
    from intake.models import Ticket

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        incident = _incident(session, incident_id)
        for ref in refs:
            ticket = session.scalar(select(Ticket).where(Ticket.ref == ref.upper()))
            if ticket is None:
                _fail(f"no ticket {ref}")
            core.link(session, ticket, incident, actor=ACTOR)
    click.echo(f"linked {len(refs)} to incident {incident_id}")


@incidents.command("unlink")
@click.argument("refs", nargs=-1, required=True)
def unlink_cmd(refs: tuple[str, ...]) -> None:
    """Take tickets out of their incident's group."""
    from intake import incidents as core
    from intake.db import session_scope
    from intake.models import Ticket

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        for ref in refs:
            ticket = session.scalar(select(Ticket).where(Ticket.ref == ref.upper()))
            if ticket is None:
                _fail(f"no ticket {ref}")
            core.unlink(session, ticket, actor=ACTOR)
    click.echo(f"unlinked {len(refs)}")
