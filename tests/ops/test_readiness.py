"""Readiness: `/healthz`, `/readyz` and `hotline doctor` say the same thing, with reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from alembic import command

from intake.migrate import alembic_config
from tests.processes import wait_for
from tests.worker.test_reliability import kill


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intake.cli", "doctor"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def client() -> Any:
    from web import create_app

    return create_app({"TESTING": True}).test_client()


def test_it_is_alive_without_asking_anything_else(env):
    response = client().get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok"


def test_it_is_not_ready_without_a_worker_and_says_why(env):
    response = client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
    assert body["checks"]["redis"]["ok"]
    assert not body["checks"]["workers"]["ok"]
    assert not body["checks"]["scheduler"]["ok"]
    assert any("hotline worker" in r for r in body["reasons"])
    result = doctor(env)
    assert result.returncode == 1
    assert "FAIL  workers" in result.stdout and "ok    database" in result.stdout
    assert "not ready" in result.stdout


def test_it_is_ready_once_a_worker_with_its_scheduler_runs(env, tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "worker"],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("ab"),
    )
    try:
        web = client()
        wait_for(lambda: web.get("/readyz").status_code == 200, 30, "the worker to be seen")
        assert web.get("/readyz").get_json()["reasons"] == []
        result = doctor(env)
        assert result.returncode == 0, result.stdout
        assert result.stdout.strip().endswith("ready")
    finally:
        kill(worker)


def test_it_is_not_ready_when_the_schema_is_behind(env, tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0010")
    result = doctor({**env, "DATABASE_URL": url})
    assert result.returncode == 1
    assert "FAIL  migrations" in result.stdout
    assert "schema at 0010" in result.stdout and "hotline init-db" in result.stdout


def test_it_is_not_ready_when_redis_is_unreachable(env, monkeypatch):
    from intake.config import get_settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    response = client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["redis"]["detail"].startswith("cannot reach Redis")
    assert body["checks"]["database"]["ok"]
