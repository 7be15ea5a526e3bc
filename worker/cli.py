"""`hotline worker`: registered with the core command line through the `hotline.commands` entry point."""

from __future__ import annotations

import logging

import click


@click.command("worker")
@click.option("--burst", is_flag=True, help="run until the queues are empty, then exit")
@click.option(
    "--with-scheduler/--without-scheduler",
    default=True,
    help="also run RQ's scheduler for timed jobs",
)
def worker_cmd(burst: bool, with_scheduler: bool) -> None:
    """Route tickets, send replies, place callbacks: an RQ worker plus the outbox relay."""
    from intake.cli import settings_or_exit
    from worker.runner import run_worker

    settings_or_exit()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_worker(burst=burst, with_scheduler=with_scheduler)


def commands() -> list[click.Command]:
    return [worker_cmd]
