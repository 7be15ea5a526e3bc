from __future__ import annotations

import json
import os
import subprocess
import sys

from redis import Redis

from intake.service import receive
from tests.factories import email_contact
from worker.runner import drain


def hotline(env, *args):
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tickets_list_and_show_speak_the_public_json(env, demo, sessions, redis_url):
    receipt = receive(sessions, email_contact(), demo.config)
    drain(Redis.from_url(redis_url))
    listed = json.loads(hotline(env, "tickets", "list", "--format", "json"))
    assert [t["ref"] for t in listed] == [receipt.ticket_ref]
    expected = {
        "ref",
        "channel",
        "category",
        "priority",
        "status",
        "department",
        "language",
        "subject",
        "description",
        "contact_phone",
        "contact_email",
        "resident",
        "created_at",
    }
    assert expected <= set(listed[0])
    shown = json.loads(
        hotline(env, "tickets", "show", receipt.ticket_ref.lower(), "--format", "json")
    )
    assert shown["department"] == "engineering"
    assert shown["created_at"].endswith("+08:00")
    entry = shown["timeline"][0]
    assert {"kind", "direction", "channel", "body_text", "external_id", "created_at"} <= set(entry)
    assert entry["body_text"] == "我家廚房漏水，請派人維修。"
    assert [e["kind"] for e in shown["events"]][:2] == ["created", "routed"]
    assert shown["callbacks"] == []


def test_init_db_on_a_fresh_database_and_seed_demo_twice(tmp_path):
    env = {
        "HOTLINE_DATA_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
    }
    env_run = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    for args in (("init-db",), ("seed-demo",), ("seed-demo",)):
        result = subprocess.run(
            [sys.executable, "-m", "intake.cli", *args],
            env={**env_run, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert "added 0 operators, 0 buildings, 0 units, 0 residents" in result.stdout


def test_the_models_and_the_migrations_agree(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from intake.db import get_engine
    from intake.migrate import heads, upgrade_to_head
    from intake.models import Base

    assert len(heads()) == 1, "two migration heads: chain the newest migration after the other"
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_to_head(url)
    with get_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_create_operator_and_import_residents(env, tmp_path):
    out = hotline(
        env,
        "create-operator",
        "--email",
        "Mei@Example.com",
        "--password",
        "long-enough-pw",
        "--role",
        "supervisor",
    )
    assert "created supervisor" in out
    csv_path = tmp_path / "residents.csv"
    csv_path.write_text(
        "name,language,building,unit,phone,email\n何家輝,zh-Hant,D,5F,0912345678,ho@example.com\n",
        encoding="utf-8",
    )
    assert "imported 1 new" in hotline(env, "import-residents", str(csv_path))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,language,building,unit,phone,email\n,xx,D,,12,\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", "import-residents", str(bad)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "line 2: name is empty" in result.stderr and "line 2: language 'xx'" in result.stderr


def test_create_operator_refuses_department_staff_without_a_department(env, demo, sessions):
    from click.testing import CliRunner
    from sqlalchemy import select

    from intake.cli import main
    from intake.models import Operator

    args = ["create-operator", "--email", "nodept@example.com", "--password", "long-enough-pw"]
    refused = CliRunner().invoke(main, [*args, "--role", "department"])
    assert refused.exit_code == 2 and "--department" in refused.output
    with sessions() as session:
        assert (
            session.scalar(select(Operator).where(Operator.email == "nodept@example.com")) is None
        )
    made = CliRunner().invoke(main, [*args, "--role", "department", "--department", "engineering"])
    assert made.exit_code == 0, made.output


def test_the_sqlite_database_and_its_directory_are_private(tmp_path):
    """Password hashes and residents' personal data: the file (and its -wal/-shm) 0600, the data
    directory 0700, whatever the umask; a file left world-readable by an older version is
    tightened when it is opened."""
    import stat

    data = tmp_path / "var"
    env_run = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env_run["HOTLINE_DATA_DIR"] = str(data)
    old = os.umask(0o022)
    try:
        for args in (("init-db",), ("seed-demo",)):
            result = subprocess.run(
                [sys.executable, "-m", "intake.cli", *args],
                env=env_run,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
            )
            assert result.returncode == 0, result.stderr
    finally:
        os.umask(old)

    def mode(path):
        return stat.S_IMODE(os.stat(path).st_mode)

    assert mode(data) == 0o700
    for name in ("hotline.db", "hotline.db-wal", "hotline.db-shm"):
        if (data / name).exists():
            assert mode(data / name) == 0o600, name
    os.chmod(data / "hotline.db", 0o644)
    os.chmod(data, 0o755)
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", "tickets", "list", "--format", "json"],
        env=env_run,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert mode(data / "hotline.db") == 0o600 and mode(data) == 0o700
