"""`hotline web`: the console, API and voice webhooks behind gunicorn."""

from __future__ import annotations

import os
import sys

import click


@click.command("web")
@click.option(
    "--port", default=lambda: int(os.environ.get("PORT", "5000")), show_default="5000 or $PORT"
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True)
def web_cmd(port: int, host: str, workers: int) -> None:
    """Serve the operator console, the API and the Twilio webhooks."""
    from intake.cli import note_config_changes, settings_or_exit

    note_config_changes(settings_or_exit())
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--bind",
            f"{host}:{port}",
            "--access-logfile",
            "-",
            "--config",
            "python:web.gunicorn_conf",
            "web:create_app()",
        ],
    )


def commands() -> list[click.Command]:
    return [web_cmd]
