"""Voice webhook throughput: `POST /voice/incoming` for a known caller under concurrent load,
through gunicorn configured as `hotline web` runs it, next to two baselines on the same server in
the same run: a bare Flask view that writes the same call row with one SQLAlchemy Core insert and
returns the same TwiML, and a view that returns that TwiML from a constant.

    python bench/bench_voice.py [--requests 3000] [--callers 16] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Every request to /voice/incoming is a new call (a fresh CallSid), signed as Twilio signs it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_database, seeded  # noqa: E402

from intake.models import Call, utcnow  # noqa: E402

CALLER = "+886912000001"
PUBLIC = "https://hotline.example.com"
TWIML_CACHE = "HOTLINE_BENCH_TWIML"


def bench_app():  # type: ignore[no-untyped-def]
    """The production app plus the two baselines, served by the same gunicorn workers."""
    from flask import Response, request

    from intake.config import get_settings
    from intake.db import get_engine
    from web.app import create_app

    app = create_app()
    app.config["CSRF_EXEMPT_PREFIXES"] = (*app.config["CSRF_EXEMPT_PREFIXES"], "/bench/")
    engine = get_engine(get_settings().database_url)
    twiml = Path(os.environ[TWIML_CACHE]).read_text(encoding="utf-8")

    @app.post("/bench/core-insert")
    def core_insert() -> Response:
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(
                insert(Call).values(
                    call_sid=request.form["CallSid"],
                    direction="inbound",
                    from_number=request.form["From"],
                    to_number=request.form["To"],
                    status="ringing",
                    status_sequence=-1,
                    language="zh-Hant",
                    ivr_path=["greeted"],
                    filed=False,
                    greeted=True,
                    started_at=now,
                    meta={},
                )
            )
        return Response(twiml, mimetype="text/xml")

    @app.post("/bench/constant")
    def constant() -> Response:
        return Response(twiml, mimetype="text/xml")

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bodies(n: int, token: str, path: str) -> list[tuple[bytes, str]]:
    from voice.signature import sign

    out = []
    for _ in range(n):
        form = {
            "CallSid": "CA" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": CALLER,
            "To": "+886227000000",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        out.append((urlencode(form).encode(), sign(token, PUBLIC + path, form)))
    return out


def load(
    port: int, path: str, work: list[tuple[bytes, str]], callers: int
) -> tuple[float, list[float], int]:
    """`callers` threads, each on its own keep-alive connection; (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    chunks = [work[i::callers] for i in range(callers)]
    start_gate = threading.Barrier(callers + 1)

    def caller(items: list[tuple[bytes, str]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        start_gate.wait()
        for body, signature in items:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            }
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
            if response.status != 200:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0, latencies, errors[0]


def wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def run(
    database_url: str,
    requests: int,
    callers: int,
    workers: int,
    threads: int,
    prepare: Callable[[str], object] | None = None,
) -> float:
    """Prints the table; returns the voice / Core-insert throughput ratio. `prepare(url)` runs
    after the demo data is seeded (e.g. to declare an incident)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-voice-"))
    settings, _sessions = seeded(
        database_url, tmp, TWILIO_AUTH_TOKEN="bench-token", **{TWIML_CACHE: str(tmp / "twiml.xml")}
    )
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_CONFIG"}  # for gunicorn
    from web.app import create_app

    if prepare is not None:
        prepare(database_url)
    # The TwiML the real handler gives a known caller, for the baselines to return.
    client = create_app(settings=settings).test_client()
    [(body, signature)] = bodies(1, "bench-token", "/voice/incoming")
    twiml = client.post(
        "/voice/incoming",
        data=body,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    ).get_data(as_text=True)
    assert "陳大文" in twiml, twiml
    (tmp / "twiml.xml").write_text(twiml, encoding="utf-8")

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT / "bench"),
            "--pythonpath",
            str(ROOT),
            "bench_voice:bench_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, time.monotonic() + 60)
        results = {}
        for name, path in (
            ("voice /voice/incoming", "/voice/incoming"),
            ("baseline: Core insert", "/bench/core-insert"),
            ("baseline: constant TwiML", "/bench/constant"),
        ):
            load(port, path, bodies(min(200, requests), "bench-token", path), callers)  # warm-up
            work = bodies(requests, "bench-token", path)
            seconds, latencies, errors = load(port, path, work, callers)
            latencies.sort()
            results[name] = (
                requests / seconds,
                statistics.median(latencies) * 1000,
                latencies[int(len(latencies) * 0.99) - 1] * 1000,
                errors,
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("select count(*) from call where call_sid like 'CA%'")).scalar()
    engine.dispose()
    backend = database_url.split(":", 1)[0]
    print(
        f"\n{backend}: {requests} requests per target, {callers} concurrent callers, "
        f"gunicorn {workers} workers x {threads} threads; {stored} call rows stored"
    )
    print(f"{'target':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, (rps, p50, p99, errors) in results.items():
        print(f"{name:28} {rps:8.0f} {p50:8.1f} {p99:8.1f} {errors:7d}")
    voice, core, const = (results[k][0] for k in results)
    print(f"voice / Core-insert baseline throughput: {voice / core:.2f} (target >= 0.5)")
    print(f"voice / constant baseline throughput:    {voice / const:.2f}")
    print(f"voice p99: {results['voice /voice/incoming'][2]:.1f} ms (target < 50 ms)")
    return voice / core


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="as `hotline web` (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="as `hotline web` (default 4)")
    parser.add_argument(
        "--pg", help="also run on this PostgreSQL server URL (a scratch database is created)"
    )
    args = parser.parse_args()
    sqlite_url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-voice-db-')}/hotline.db"
    run(sqlite_url, args.requests, args.callers, args.workers, args.threads)
    if args.pg:
        with scratch_database(args.pg, prefix="bench_voice") as url:
            run(url, args.requests, args.callers, args.workers, args.threads)


if __name__ == "__main__":
    main()
