"""Dashboard, monthly report and SLA sweep over 1,000,000 tickets in PostgreSQL (issue 14).

The tickets come from bench_web's generator (INSERT ... SELECT generate_series: one every 30 s,
so about 86,000 in the last 30 days and 12 % of all still open: about 120,000). Prints p50/p95 of

- the dashboard for the last 30 days (`GET /dashboard`, signed in, through the WSGI app), reading
  the daily roll-up (`intake.rollup`) for whole past days, built first as `hotline reports rollup
  --all` would (its time is printed);
- the printable monthly report for the current month (`GET /reports/monthly`);
- one SLA sweep's reading (`intake.sla.sla_actions`) once every open ticket's next deadline is
  known, with nothing due: the steady state of the every-minute sweep;

next to a baseline run in the same process on the same data: the one statement the old code ran
before aggregating in Python (every ticket row of the period; every open ticket with a due time
for the sweep); and the dashboard's figures from the roll-up next to the same figures computed
live from `ticket` for every day (`build_report(live=True)`: the SQL aggregates the dashboard ran
before the roll-up). Targets: dashboard and monthly report p95 < 500 ms; the sweep < 1 s and not
growing with the open-ticket count when nothing is due.

    python bench/bench_reports.py [--tickets 1000000] [--runs 20] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_web import OPEN, fill, pct, timed
from scratch import scratch_database, seeded

PERIOD_ROWS = """SELECT id, channel, category, created_at, first_response_due_at,
    first_responded_at, resolution_due_at, resolved_at, satisfaction, department_id, unit_id
FROM ticket WHERE created_at >= now() - interval '30 days' AND merged_into_id IS NULL"""
MONTH_ROWS = PERIOD_ROWS.replace("now() - interval '30 days'", "date_trunc('month', now())")
OPEN_ROWS = f"""SELECT * FROM ticket WHERE status IN {OPEN} AND escalation_level < 2
AND (first_response_due_at IS NOT NULL OR resolution_due_at IS NOT NULL) ORDER BY id"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with scratch_database(args.pg) as url:
        run(url, args.tickets, args.runs)


def run(url: str, tickets: int, runs: int) -> None:
    settings, sessions = seeded(url, tempfile.mkdtemp(prefix="hotline-bench-"))
    from intake.clock import utcnow
    from intake.db import get_engine
    from intake.models import Operator
    from intake.sla import sla_actions
    from web import create_app

    with sessions() as session:
        operator = session.scalar(
            select(Operator).where(Operator.email == "supervisor@hotline.localhost")
        )
        assert operator is not None
        from web.signed_in import remember_sign_in

        signed_in: dict[str, object] = {}
        remember_sign_in(signed_in, operator)
        session.commit()
    engine = get_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        fill(conn, tickets)
        # A desk that keeps up: the open tickets are the last two days' and their clocks still
        # run (the generator spreads open tickets over the whole year, long past due).
        conn.execute(
            text(
                "UPDATE ticket SET created_at = now() - (id % 2880) * interval '1 minute',"
                " first_response_due_at = now() - (id % 2880) * interval '1 minute'"
                " + interval '3 days',"
                " resolution_due_at = now() - (id % 2880) * interval '1 minute' + interval '7 days'"
                f" WHERE status IN {OPEN}"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        open_count = conn.execute(
            text(f"SELECT count(*) FROM ticket WHERE status IN {OPEN}")
        ).scalar_one()
    print(
        f"{tickets:,} tickets generated in {time.perf_counter() - started:.1f} s "
        f"({open_count:,} open)"
    )
    from intake.rollup import refresh

    started = time.perf_counter()
    with sessions() as session:
        built = refresh(session, settings.config, everything=True)
    print(f"roll-up of {len(built.written)} days built in {time.perf_counter() - started:.1f} s")
    app = create_app(settings=settings)
    client = app.test_client()
    with client.session_transaction() as sess:
        sess.update(signed_in)
    raw = engine.raw_connection()
    raw.driver_connection.autocommit = True  # type: ignore[union-attr]
    cursor = raw.cursor()

    def bare(sql: str) -> Any:
        def go() -> Any:
            cursor.execute(sql)
            return cursor.fetchall()

        return go

    def page(path: str) -> Any:
        def go() -> Any:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        return go

    from worker.sla import sla_sweep

    now = utcnow()
    # The first sweep after the upgrade looks at every open ticket once and notes its next
    # deadline (warning those already close); the sweeps after it read only what has come due.
    cold = time.perf_counter()
    first = sla_sweep(now.isoformat())
    cold_ms = (time.perf_counter() - cold) * 1000
    second = sla_sweep(now.isoformat())

    def sweep() -> Any:
        with sessions() as session:
            found = sla_actions(session, now, settings.config)
            session.rollback()
            return found

    from datetime import timedelta

    from web.reports import build_report

    today = now.astimezone(settings.config.timezone).date()

    def figures(live: bool) -> Any:
        def go() -> Any:
            with sessions() as session:
                return build_report(
                    session,
                    today - timedelta(days=29),
                    today,
                    settings.config,
                    "zh-Hant",
                    live=live,
                )

        return go

    rows = []
    for label, action, baseline in (
        ("figures: roll-up/live", figures(False), figures(True)),
        ("dashboard, 30 days", page("/dashboard"), bare(PERIOD_ROWS)),
        ("monthly report", page("/reports/monthly"), bare(MONTH_ROWS)),
        ("SLA sweep, nothing due", sweep, bare(OPEN_ROWS)),
    ):
        ours, base = timed([action, baseline], runs)
        rows.append((label, pct(ours, 0.5), pct(ours, 0.95), pct(base, 0.5), pct(base, 0.95)))
    print(f"load average {os.getloadavg()[0]:.2f}; {runs} runs each, taking turns")
    print(f"{'':24} {'p50 ms':>8} {'p95 ms':>8} {'baseline p50':>13} {'p95':>8} {'ratio p95':>10}")
    for label, p50, p95, b50, b95 in rows:
        print(f"{label:24} {p50:8.1f} {p95:8.1f} {b50:13.1f} {b95:8.1f} {p95 / b95:10.2f}")
    print(
        f"first sweep after the upgrade (every open ticket once): {cold_ms:.0f} ms ({first}); "
        f"second: {second}; the sweep's baseline is the old sweep's one statement reading every "
        "open ticket (the old sweep then looked at each in Python)"
    )


if __name__ == "__main__":
    main()
