"""What the benchmarks share, so that each bench keeps only what it measures: a throwaway
PostgreSQL database, Hotline pointed at a database and seeded with the demo data, and email tickets
to work on.

The benches run as scripts (`python bench/bench_x.py`), so bench/ is first on sys.path and they
import this as `scratch`. Hotline's own modules are imported only when used: a bench sets its
environment (and puts the repository on sys.path) first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from intake.config import HotlineConfig, Settings

PUBLIC = "https://hotline.example.com"


@contextmanager
def scratch_database(admin_url: str, prefix: str = "hotline_bench") -> Iterator[str]:
    """A new, empty database `<prefix>_<hex>` on the server of `admin_url`; yields its URL.

    Dropped at the end, even when the run fails: Hotline's engines are disposed first and the
    drop is forced, so connections left open (a killed worker's) do not keep it.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        from intake.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def point_at(url: str, data_dir: str | Path, **env: str) -> Settings:
    """Hotline's settings for `url` (DATABASE_URL, HOTLINE_DATA_DIR, SECRET_KEY=bench,
    PUBLIC_BASE_URL and any other `env`, set in os.environ), read afresh."""
    from intake.config import get_settings

    os.environ.update(
        DATABASE_URL=url,
        HOTLINE_DATA_DIR=str(data_dir),
        SECRET_KEY="bench",
        PUBLIC_BASE_URL=PUBLIC,
        **env,
    )
    get_settings.cache_clear()
    return get_settings()


def seeded(url: str, data_dir: str | Path, **env: str) -> tuple[Settings, sessionmaker[Session]]:
    """Hotline pointed at `url` (see `point_at`), migrated to the head and seeded with the demo
    data (committed); its settings and sessions."""
    from intake.db import session_factory
    from intake.demo import seed_demo
    from intake.migrate import upgrade_to_head

    settings = point_at(url, data_dir, **env)
    upgrade_to_head(url)
    sessions = session_factory(url)
    with sessions() as session:
        seed_demo(session, settings.config)
        session.commit()
    return settings, sessions


def email_tickets(
    sessions: sessionmaker[Session],
    config: HotlineConfig,
    count: int,
    *,
    texts: Sequence[str],
    tag: str,
    senders: int,
) -> list[int]:
    """`count` new tickets from emails received through `intake.service.receive` (from `senders`
    residents in turn, the texts in turn); their ids."""
    from intake.contact import InboundContact
    from intake.service import receive

    ids = []
    for i in range(count):
        receipt = receive(
            sessions,
            InboundContact(
                channel="email",
                external_id=f"<{tag}-{uuid.uuid4().hex}@bench.example.com>",
                kind="email",
                sender_email=f"resident{i % senders}@example.com",
                subject=f"#{i}",
                text=texts[i % len(texts)],
            ),
            config,
        )
        ids.append(receipt.ticket_id)
    return ids
