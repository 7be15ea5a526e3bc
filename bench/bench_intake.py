"""Intake throughput: contacts/s through `intake.service.receive` to committed tickets, next to a
bare baseline that writes the same rows (ticket, interaction, event, two outbox rows) with one
SQLAlchemy Core insert each, one transaction per contact — in the same run, on SQLite and PostgreSQL.

    python bench/bench_intake.py [--contacts 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch import scratch_database

from intake.config import load_config
from intake.contact import InboundContact
from intake.db import get_engine, session_factory
from intake.migrate import upgrade_to_head
from intake.models import Event, Interaction, Outbox, Ticket, utcnow
from intake.service import receive

TEXTS = [
    "我家廚房漏水，請派人維修",
    "樓上好吵，投訴噪音",
    "請問物業費收據",
    "The lift is broken again",
    "电梯坏了",
]


def contacts(n: int, tag: str) -> list[InboundContact]:
    return [
        InboundContact(
            channel="email",
            external_id=f"<{tag}-{i}@bench.example.com>",
            kind="email",
            sender_email=f"resident{i % 500}@example.com",
            subject=f"#{i}",
            text=TEXTS[i % len(TEXTS)],
        )
        for i in range(n)
    ]


def run_intake(url: str, items: list[InboundContact]) -> float:
    config = load_config()
    sessions = session_factory(url)
    start = time.perf_counter()
    for contact in items:
        receive(sessions, contact, config)
    return time.perf_counter() - start


def run_baseline(url: str, items: list[InboundContact]) -> float:
    engine = get_engine(url)
    start = time.perf_counter()
    for c in items:
        now = utcnow()
        with engine.begin() as conn:
            ticket_id = conn.execute(
                insert(Ticket)
                .values(
                    channel=c.channel,
                    category="repair",
                    priority="P3",
                    status="new",
                    escalated=False,
                    escalation_level=0,
                    needs_paging=False,
                    contact_email=c.sender_email,
                    language="zh-Hant",
                    subject=c.subject,
                    description=c.text,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Ticket.id)
            ).scalar_one()
            conn.execute(
                update(Ticket).where(Ticket.id == ticket_id).values(ref=f"HL-{ticket_id:06d}")
            )
            conn.execute(
                insert(Interaction).values(
                    ticket_id=ticket_id,
                    kind="email",
                    direction="in",
                    channel="email",
                    external_id=c.external_id,
                    sender=c.sender_email,
                    body_text=c.text,
                    meta={},
                    created_at=now,
                )
            )
            conn.execute(
                insert(Event).values(
                    ticket_id=ticket_id,
                    kind="created",
                    actor="system",
                    message="",
                    data={},
                    created_at=now,
                )
            )
            for job in ("route_ticket", "acknowledge"):
                conn.execute(
                    insert(Outbox).values(
                        job=job,
                        args={"ticket_id": ticket_id},
                        queue="default",
                        status="pending",
                        attempts=0,
                        available_at=now,
                        created_at=now,
                    )
                )
    return time.perf_counter() - start


def measure(label: str, database: Callable[[], AbstractContextManager[str]], n: int) -> None:
    """`database()`: a fresh database for each side, its URL."""
    rows = []
    for name, fn in (("baseline (Core inserts)", run_baseline), ("intake.receive", run_intake)):
        with database() as url:
            upgrade_to_head(url)
            fn(url, contacts(50, "warm-" + name[:4]))
            elapsed = fn(url, contacts(n, "run-" + name[:4]))
        rows.append((name, n / elapsed))
    base, ours = rows[0][1], rows[1][1]
    print(
        f"{label:<11} baseline {base:8.1f} contacts/s   intake {ours:8.1f} contacts/s   ratio {ours / base:5.2f}   (target >= 0.50)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    counter = iter(range(100))
    measure(
        "SQLite", lambda: nullcontext(f"sqlite:///{tmp / f'b{next(counter)}.db'}"), args.contacts
    )
    try:
        measure("PostgreSQL", lambda: scratch_database(args.pg), args.contacts)
    except Exception as exc:
        print(f"PostgreSQL  skipped: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()
