"""gunicorn settings `hotline web` passes (`--config python:web.gunicorn_conf`)."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker that exits stops counting in the shared metrics directory."""
    from intake.metrics import mark_dead

    mark_dead(worker.pid)
