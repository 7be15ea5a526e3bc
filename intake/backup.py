"""`hotline backup FILE` and `hotline restore FILE`.

A backup is one tar.gz: `manifest.json` (engine, schema revision, rows per table, files), the database
(`database.sqlite` taken with SQLite's online backup API while the centre runs, or `database.pgdump`
from `pg_dump --format=custom`), and the data directory's files (`data/`: attachments, recordings,
the installation's secrets) without the live database or the embedded Redis.

`restore` refuses a database that already holds tables: it restores into an empty one only.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from intake.clock import utcnow
from intake.config import Settings

FORMAT = 1
SKIP_DIRS = {"redis", "prometheus"}


class BackupError(RuntimeError):
    pass


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _libpq_url(url: str) -> str:
    """The URL for pg_dump/pg_restore (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return {
                t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() or 0)
                for t in tables
            }
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    counts_engine = create_engine(url)
    try:
        with counts_engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        counts_engine.dispose()


def _data_files(data_dir: Path, exclude: set[Path]) -> list[Path]:
    if not data_dir.is_dir():
        return []
    found = []
    for root, dirs, files in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(root) / name
            if path.resolve() in exclude or name.endswith((".part", "-wal", "-shm", "-journal")):
                continue
            found.append(path)
    return sorted(found)


def backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Writes the backup to `target` (atomically); returns its manifest."""
    url = settings.database_url
    engine_name = make_url(url).get_backend_name()
    with tempfile.TemporaryDirectory(prefix="hotline-backup-") as tmp:
        work = Path(tmp)
        exclude: set[Path] = set()
        if engine_name == "sqlite":
            source = _sqlite_path(url)
            exclude.add(source.resolve())
            dump = work / "database.sqlite"
            src = sqlite3.connect(str(source))
            dst = sqlite3.connect(str(dump))
            try:
                src.backup(dst)  # a consistent copy while other processes write
            finally:
                dst.close()
                src.close()
        elif engine_name == "postgresql":
            dump = work / "database.pgdump"
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    "--no-acl",
                    "-f",
                    str(dump),
                    _libpq_url(url),
                ]
            )
        else:
            raise BackupError(f"cannot back up a {engine_name} database")
        files = _data_files(settings.data_dir, exclude)
        manifest = {
            "format": FORMAT,
            "engine": engine_name,
            "created_at": utcnow().isoformat(),
            "revision": _revision(url),
            "rows": row_counts(url),
            "files": [str(p.relative_to(settings.data_dir)) for p in files],
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        partial = target.with_name(target.name + ".part")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(work / "manifest.json", arcname="manifest.json")
            tar.add(dump, arcname=dump.name)
            for path in files:
                tar.add(path, arcname=f"data/{path.relative_to(settings.data_dir)}")
        os.replace(partial, target)
    return manifest


def _run(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{cmd[0]} is not installed (PostgreSQL's client tools are needed)")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BackupError(f"{cmd[0]} failed: {result.stderr.strip()[:500]}")


def _is_empty(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restores `source` into the (empty) configured database and data directory; its manifest."""
    url = settings.database_url
    engine_name = make_url(url).get_backend_name()
    with tempfile.TemporaryDirectory(prefix="hotline-restore-") as tmp:
        work = Path(tmp)
        try:
            with tarfile.open(source, "r:gz") as tar:
                tar.extractall(work, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise BackupError(f"{source} is not a Hotline backup ({exc})") from None
        try:
            manifest = json.loads((work / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise BackupError(f"{source} has no readable manifest.json") from None
        if manifest.get("engine") != engine_name:
            raise BackupError(
                f"the backup is of a {manifest.get('engine')} database; DATABASE_URL is {engine_name}"
            )
        if engine_name == "sqlite":
            path = _sqlite_path(url)
            if path.exists() and path.stat().st_size > 0 and not _is_empty(url):
                raise BackupError(f"{path} is not empty: restore into a new database")
            path.parent.mkdir(parents=True, exist_ok=True)
            src = sqlite3.connect(str(work / "database.sqlite"))
            dst = sqlite3.connect(str(path))
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        else:
            if not _is_empty(url):
                raise BackupError("the database is not empty: restore into a new database")
            _run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--no-acl",
                    "--exit-on-error",
                    "-d",
                    _libpq_url(url),
                    str(work / "database.pgdump"),
                ]
            )
        data = work / "data"
        if data.is_dir():
            for path in sorted(p for p in data.rglob("*") if p.is_file()):
                dest = settings.data_dir / path.relative_to(data)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
    return manifest
