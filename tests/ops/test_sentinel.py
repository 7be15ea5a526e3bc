"""Redis behind Sentinel: with `REDIS_URL=redis+sentinel://…/mymaster/0` the web, a worker and its
scheduler find the master through a real redis-sentinel, and keep working after it fails over to the
replica (the old master killed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from redis import Redis
from redis.exceptions import RedisError

from intake.cli import main
from tests.processes import free_port, wait_for
from tests.worker.test_reliability import kill

SERVICE = "mymaster"


@pytest.fixture
def db_url(pg_url: str) -> str:
    """Several machines share PostgreSQL; one database is enough to prove the Redis side."""
    return pg_url


def _redis_server() -> str | None:
    return shutil.which("redis-sentinel") or shutil.which("redis-server")


class RedisHA:
    """A master, a replica and one sentinel (quorum 1) on free ports, each its own process."""

    def __init__(self, tmp: Path, exe: str) -> None:
        self.tmp, self.exe = tmp, exe
        self.master_port, self.replica_port, self.sentinel_port = (free_port() for _ in range(3))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def _start(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(
            [self.exe, *args],
            stdout=(self.tmp / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        # No 5 s wait before the replica's first full sync (repl-diskless-sync-delay).
        self._start(
            "master", "--port", str(self.master_port), "--repl-diskless-sync-delay", "0", *common
        )
        self._start(
            "replica",
            "--port",
            str(self.replica_port),
            "--replicaof",
            "127.0.0.1",
            str(self.master_port),
            *common,
        )
        # The sentinel learns of the replica from the master's first INFO: let it connect first.
        wait_for(self._replica_linked, 20, "the replica to sync with the master")
        conf = self.tmp / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.tmp}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        self._start("sentinel", str(conf), "--sentinel")
        wait_for(self._replica_in_sync, 20, "the replica to sync and the sentinel to see it")

    def _replica_linked(self) -> bool:
        try:
            info = Redis(port=self.replica_port, socket_connect_timeout=0.5).info("replication")
            return info.get("master_link_status") == "up"
        except RedisError:
            return False

    def _replica_in_sync(self) -> bool:
        try:
            sentinel = Redis(port=self.sentinel_port, socket_connect_timeout=0.5)
            replicas = sentinel.sentinel_slaves(SERVICE)
            return any(r.get("master-link-status") == "ok" for r in replicas)
        except RedisError:
            return False

    def master(self) -> int:
        sentinel = Redis(port=self.sentinel_port, socket_connect_timeout=0.5)
        return int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def redis_ha(tmp_path: Path) -> Iterator[RedisHA]:
    exe = _redis_server()
    if exe is None:
        pytest.skip("redis-server (Debian's redis package) is not installed")
    ha = RedisHA(tmp_path, exe)
    ha.start()
    yield ha
    ha.stop()


def test_web_workers_and_the_scheduler_follow_the_master_through_a_failover(
    env, demo, redis_ha, monkeypatch, tmp_path
):
    from intake.config import get_settings
    from web import create_app

    monkeypatch.setenv("REDIS_URL", redis_ha.url)
    get_settings.cache_clear()
    made = CliRunner().invoke(
        main, ["api-token", "create", "--name", "portal", "--role", "open311"]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.splitlines()[0].strip()
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "worker"],
        env={**os.environ, **env, "REDIS_URL": redis_ha.url},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("ab"),
    )
    web = create_app({"TESTING": True}).test_client()

    def ready() -> Any:
        answer = web.get("/readyz")
        return answer.get_json() if answer.status_code == 200 else None

    def file_request(text: str) -> str:
        answer = web.post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "service_code": "repair",
                "address_string": "A座",
                "description": text,
            },
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)
        return str(answer.get_json()[0]["service_request_id"])

    def routed(ref: str) -> bool:
        get_settings.cache_clear()
        shown = CliRunner().invoke(main, ["tickets", "show", ref, "--format", "json"])
        return '"status": "routed"' in shown.output

    try:
        wait_for(ready, 30, "/readyz: Redis, a worker and the scheduler through Sentinel")
        first = file_request("大堂燈壞了")
        wait_for(lambda: routed(first), 30, "the worker to route the first request")

        # The master dies; the sentinel promotes the replica.
        kill(redis_ha.procs["master"])
        started = time.monotonic()
        wait_for(lambda: redis_ha.master() == redis_ha.replica_port, 30, "the failover")
        failover_seconds = time.monotonic() - started

        second = file_request("電梯按鈕失靈")
        wait_for(lambda: routed(second), 60, "the worker to route after the failover")
        checks = wait_for(ready, 30, "/readyz after the failover")["checks"]
        assert checks["redis"]["ok"] and checks["workers"]["ok"] and checks["scheduler"]["ok"]
        assert Redis(port=redis_ha.replica_port).info("replication")["role"] == "master"
        print(f"failover took {failover_seconds:.1f} s")
    finally:
        kill(worker)


def test_a_wrong_sentinel_url_is_one_line_naming_redis_url(monkeypatch):
    from intake.config import ConfigError, load_settings
    from intake.redis_client import parse_sentinel_url

    address = parse_sentinel_url("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/mymaster/2")
    assert address.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (address.service, address.db, address.password) == ("mymaster", 2, "pw")
    for wrong, says in (
        ("redis+sentinel://10.0.0.1:26379", "no service name"),
        ("redis+sentinel://10.0.0.1:x/mymaster", "not a number"),
        ("redis+sentinel:///mymaster", "no sentinel"),
        ("sentinel://10.0.0.1/mymaster", "redis+sentinel://"),
    ):
        monkeypatch.setenv("REDIS_URL", wrong)
        with pytest.raises(ConfigError, match=re.escape(says)) as raised:
            load_settings(env_file=None)
        assert str(raised.value).startswith("REDIS_URL") and "\n" not in str(raised.value)
