"""`hotline backup` while the centre holds tickets, mail attachments and recordings, then `hotline
restore` into a fresh database and data directory: the same tickets, rows and files come back."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import uuid
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, text

from intake.backup import row_counts
from voice.simulator import press, say


def hotline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intake.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def fresh_database(db_url: str, tmp_path: Path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    name = f"hotline_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return db_url.rsplit("/", 1)[0] + "/" + name


def drop(url: str) -> None:
    if url.startswith("postgresql"):
        from intake.db import dispose_engines

        dispose_engines()
        admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def test_a_backup_restores_into_a_fresh_database_with_the_same_tickets_and_files(
    world, demo, env, db_url, tmp_path
):
    world.at(datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone))
    world.call([press("1"), say("廚房漏水"), say("補充：在洗碗盆下面")], caller="+886912000001")
    message = EmailMessage()
    message["From"] = "chan.taiman@example.com"
    message["To"] = demo.mail_from
    message["Subject"] = "天花板漏水照片"
    message["Message-ID"] = "<photo-1@example.com>"
    message.set_content("附上照片。")
    message.add_attachment(
        b"\x89PNG fake photo bytes", maintype="image", subtype="png", filename="leak.png"
    )
    world.send_mail(sender="x@example.com", subject="warm-up", body="開始")  # starts the listener
    with smtplib.SMTP("127.0.0.1", world._listener.port, timeout=30) as smtp:
        smtp.send_message(message)
    world.drain()
    data_dir = Path(env["HOTLINE_DATA_DIR"])
    files = {
        p.relative_to(data_dir): p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and "attachments" in p.parts
    }
    assert files, "the photo is stored under the data directory"

    archive = tmp_path / "hotline-backup.tar.gz"
    made = hotline(env, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert "backed up" in made.stdout and archive.exists()

    restored_url = fresh_database(db_url, tmp_path)
    try:
        there = {
            **env,
            "DATABASE_URL": restored_url,
            "HOTLINE_DATA_DIR": str(tmp_path / "restored-var"),
        }
        back = hotline(there, "restore", str(archive))
        assert back.returncode == 0, back.stderr
        assert row_counts(restored_url) == row_counts(db_url)
        before = hotline(env, "tickets", "list", "--format", "json").stdout
        after = hotline(there, "tickets", "list", "--format", "json").stdout
        assert before == after and "HL-" in after
        ref = world.hotline("tickets", "list", "--format", "json")[0]["ref"]
        assert (
            hotline(env, "tickets", "show", ref, "--format", "json").stdout
            == hotline(there, "tickets", "show", ref, "--format", "json").stdout
        )
        restored_dir = tmp_path / "restored-var"
        for rel, content in files.items():
            assert (restored_dir / rel).read_bytes() == content
        assert (restored_dir / "secret_key").exists() == (data_dir / "secret_key").exists()
        assert hotline(there, "doctor").stdout.count("ok    migrations") == 1

        again = hotline(there, "restore", str(archive))
        assert again.returncode == 1 and "not empty" in again.stderr
    finally:
        drop(restored_url)


def test_restore_refuses_what_is_not_a_backup(env, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    result = hotline(
        {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}, "restore", str(junk)
    )
    assert result.returncode == 1 and "is not a Hotline backup" in result.stderr
