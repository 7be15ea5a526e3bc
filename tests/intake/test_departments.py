from __future__ import annotations

import threading
import time

from sqlalchemy import func, select, text

from intake.models import Department
from intake.tickets import department_by_code


def _wait_until_blocked(session, worker: threading.Thread, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Until another backend waits on a lock (PostgreSQL; or the worker already ended, which the
    test then reports); SQLite's second writer waits at BEGIN."""
    if session.get_bind().dialect.name != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + seconds
    with session.get_bind().connect() as probe:
        while time.monotonic() < deadline and worker.is_alive():
            waiting = probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            if waiting:
                return
            time.sleep(0.02)
    if worker.is_alive():
        raise AssertionError("the second worker never reached its insert")


def test_two_workers_creating_the_same_department_share_one_row(settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """The first tickets of a department routed by two workers at once: both get the one row,
    neither fails (this failed one routing job in a few thousand on PostgreSQL)."""
    first = sessions()
    created = department_by_code(first, "engineering", settings.config)
    found: dict[str, object] = {}

    def second_worker() -> None:
        with sessions() as session:
            try:
                found["id"] = department_by_code(session, "engineering", settings.config).id
                session.commit()
            except Exception as exc:  # reported to the test below
                found["error"] = exc

    thread = threading.Thread(target=second_worker)
    thread.start()
    try:
        _wait_until_blocked(first, thread)
        first.commit()
    finally:
        first.close()  # never left holding the row: the next tests truncate the tables
        thread.join(30)

    assert "error" not in found, found.get("error")
    assert found["id"] == created.id
    with sessions() as session:
        rows = session.scalar(
            select(func.count()).select_from(Department).where(Department.code == "engineering")
        )
    assert rows == 1
