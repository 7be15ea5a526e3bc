"""Operations commands: `hotline doctor` (the checks of `/readyz`, in words), `hotline residents
export|erase` (one resident's data), `hotline retention run` (the daily sweep, now)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command("doctor")
def doctor() -> None:
    """Check the database, migrations, Redis, workers and scheduler; exit 1 when not ready."""
    from intake.cli import settings_or_exit
    from worker.readiness import run_checks

    checks = run_checks(settings_or_exit())
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<10}  {check.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        click.echo(f"not ready: {len(failed)} check(s) failed")
        sys.exit(1)
    click.echo("ready")


@click.group("residents")
def residents() -> None:
    """One resident's personal data: export it, or erase it."""


@residents.command("export")
@click.argument("resident_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json")
def residents_export(resident_id: int, fmt: str) -> None:
    """Everything held about a resident: JSON, or a readable document (--format text)."""
    import json

    from intake import audit
    from intake.cli import cli_actor, settings_or_exit
    from intake.db import session_scope
    from intake.privacy import export_resident, export_text

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        try:
            data = export_resident(session, resident_id, settings.config)
        except LookupError:
            click.echo(f"error: no resident {resident_id}", err=True)
            sys.exit(1)
        audit.record(
            session, "resident_exported", **cli_actor(), target=str(resident_id), format=fmt
        )
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(export_text(data))


@residents.command("erase")
@click.argument("resident_id", type=int)
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def residents_erase(resident_id: int, yes: bool) -> None:
    """Remove a resident's personal data; their tickets stay, anonymous, for statistics."""
    from intake import audit
    from intake.cli import cli_actor, settings_or_exit
    from intake.db import session_scope
    from intake.models import Resident
    from intake.privacy import erase_resident
    from worker.retention import recording_deleter

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        if session.get(Resident, resident_id) is None:
            click.echo(f"error: no resident {resident_id}", err=True)
            sys.exit(1)
        if not yes:
            click.confirm(f"Erase resident {resident_id}'s personal data for good?", abort=True)
        try:
            counts = erase_resident(
                session, resident_id, settings.data_dir, recording_deleter(settings)
            )
        except Exception as exc:  # Twilio refused to delete a recording: erase nothing yet
            session.rollback()
            click.echo(f"error: nothing erased, try again later ({exc})", err=True)
            sys.exit(1)
        detail: dict[str, Any] = dict(counts)
        audit.record(session, "resident_erased", **cli_actor(), target=str(resident_id), **detail)
    click.echo(
        f"erased resident {resident_id}: "
        + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())
    )


@click.group("retention")
def retention() -> None:
    """Retention of residents' data (the `retention:` section of the configuration)."""


@retention.command("run")
def retention_run() -> None:
    """Remove what is past its retention now (the worker does this daily) and say what."""
    from intake.cli import settings_or_exit
    from worker.retention import retention_sweep

    settings_or_exit()
    removed = retention_sweep()
    click.echo("removed: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in removed.items()))


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_cmd(file: Path) -> None:
    """Back up the database and the data directory's files into FILE (a tar.gz), while running."""
    from intake.backup import BackupError, backup
    from intake.cli import settings_or_exit

    try:
        manifest = backup(settings_or_exit(), file)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"backed up {manifest['engine']} database at {manifest['revision']}"
        f" ({sum(manifest['rows'].values())} rows) and {len(manifest['files'])} files to {file}"
    )


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_cmd(file: Path) -> None:
    """Restore a backup into an empty database (DATABASE_URL) and the data directory."""
    from intake.backup import BackupError, restore
    from intake.cli import settings_or_exit

    try:
        manifest = restore(settings_or_exit(), file)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"restored {sum(manifest['rows'].values())} rows and {len(manifest['files'])} files"
        f" from a backup of {manifest['created_at']}; run `hotline init-db` if the code is newer"
    )


def commands() -> list[click.Command]:
    return [doctor, residents, retention, backup_cmd, restore_cmd]
