"""`hotline worker`, `hotline routing test` and `hotline jobs ...`: registered with the core command
line through the `hotline.commands` entry point."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command("worker")
@click.option("--burst", is_flag=True, help="run until the queues are empty, then exit")
@click.option(
    "--with-scheduler/--without-scheduler",
    default=True,
    help="also run RQ's scheduler for timed jobs",
)
@click.option(
    "--fork/--no-fork",
    default=False,
    help="run each job in a forked child (RQ's default; every job starts cold)"
    " or in the worker process itself (the default here: about 20x faster routing, see docs/performance.md)",
)
def worker_cmd(burst: bool, with_scheduler: bool, fork: bool) -> None:
    """Route tickets, send replies, place callbacks: an RQ worker plus the outbox relay."""
    from intake.cli import note_config_changes, settings_or_exit
    from worker.runner import run_worker

    note_config_changes(settings_or_exit())
    run_worker(burst=burst, with_scheduler=with_scheduler, fork=fork)


@click.group("routing")
def routing() -> None:
    """Routing rules."""


def load_rules(path: str, base: Any) -> Any:
    """The configuration with its routing rules replaced by those in `path` (a whole configuration
    file or one with just `routing_rules:`), validated like the real thing."""
    import yaml

    from intake.config import ConfigError, parse_config

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--rules: expected a readable YAML file, got {path!r} ({exc})") from None
    if isinstance(data, list):
        data = {"routing_rules": data}
    if not isinstance(data, dict) or "routing_rules" not in data:
        raise ConfigError(f"--rules: expected a mapping with routing_rules in {path}")
    merged = dict(base.raw)
    merged["routing_rules"] = data["routing_rules"]
    return parse_config(merged)


@routing.command("test")
@click.option("--rules", "rules_path", default=None, help="YAML file with routing_rules to try")
@click.option("--limit", default=200, show_default=True, help="how many recent tickets to replay")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
@click.option("--all", "show_all", is_flag=True, help="list unchanged tickets too")
def routing_test(rules_path: str | None, limit: int, fmt: str, show_all: bool) -> None:
    """Replay rules against recent tickets and print what would change (changes nothing)."""
    import json

    from sqlalchemy import select

    from intake.cli import settings_or_exit
    from intake.config import ConfigError
    from intake.db import session_scope
    from intake.models import Ticket
    from intake.routing import decide, replay

    settings = settings_or_exit()
    try:
        candidate = load_rules(rules_path, settings.config) if rules_path else settings.config
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    rows: list[dict[str, Any]] = []
    with session_scope(settings.database_url) as session:
        for ticket in replay(session, candidate, limit):
            if ticket.then is not None:
                now_rule = ticket.then.get("rule")
                now_dept = ticket.then.get("department")
                now_prio = ticket.then.get("priority")
            else:
                current = decide(ticket.facts, settings.config)
                now_rule, now_dept, now_prio = current.rule, current.department, current.priority
            new = ticket.decision
            changed = (now_dept, now_prio) != (new.department, new.priority)
            if changed or show_all:
                rows.append(
                    {
                        "ref": ticket.ref,
                        "changed": changed,
                        "current": {"rule": now_rule, "department": now_dept, "priority": now_prio},
                        "new": {
                            "rule": new.rule,
                            "department": new.department,
                            "priority": new.priority,
                            "sla_profile": new.sla_profile,
                            "notify": list(new.notify),
                        },
                        "why": new.explain(),
                    }
                )
        total = session.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1))
    changed_count = sum(1 for r in rows if r["changed"])
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        cur, new = r["current"], r["new"]
        mark = "CHANGE" if r["changed"] else "same  "
        click.echo(
            f"{mark} {r['ref']}: {cur['department']} {cur['priority']} ({cur['rule']})"
            f" -> {new['department']} {new['priority']} ({new['rule']})"
        )
        if r["changed"]:
            click.echo(f"       {r['why']}")
    click.echo(
        f"{changed_count} of the last {min(limit, total or 0)} tickets would be routed differently"
    )


@click.group("jobs")
def jobs() -> None:
    """Background jobs: failures and retries."""


@jobs.command("failed")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="text")
def jobs_failed(fmt: str) -> None:
    """Jobs that failed for good, with the reason; retry one with `hotline jobs retry ID`."""
    import json

    from sqlalchemy import select

    from intake.cli import settings_or_exit
    from intake.db import session_scope
    from intake.models import Outbox

    settings = settings_or_exit()
    with session_scope(settings.database_url) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": row.id,
                "job": row.job,
                "args": row.args,
                "attempts": row.attempts,
                "error": row.last_error,
                "created_at": row.created_at.astimezone(settings.config.timezone).isoformat(),
            }
            for row in session.scalars(
                select(Outbox).where(Outbox.status == "failed").order_by(Outbox.id)
            )
        ]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        args = ", ".join(f"{k}={v}" for k, v in r["args"].items())
        click.echo(f"{r['id']}  {r['job']}({args})  after {r['attempts']} tries: {r['error']}")
    click.echo(f"{len(rows)} failed job(s); retry one with: hotline jobs retry ID")


@jobs.command("retry")
@click.argument("job_id", type=int)
def jobs_retry(job_id: int) -> None:
    """Put a failed job back on the queue."""
    from intake.cli import settings_or_exit
    from intake.db import session_factory
    from intake.tickets import retry_failed

    settings = settings_or_exit()
    if not retry_failed(session_factory(settings.database_url), job_id):
        click.echo(f"error: job {job_id} is not a failed job", err=True)
        sys.exit(1)
    click.echo(f"job {job_id} will run again")


@click.command("up")
@click.option("--port", default=5000, show_default=True)
def up(port: int) -> None:
    """Run everything on embedded defaults: database, Redis, web, worker, SMTP listener."""
    from intake.cli import settings_or_exit
    from worker.supervisor import run_up

    sys.exit(run_up(settings_or_exit(), port))


def commands() -> list[click.Command]:
    return [worker_cmd, routing, jobs, up]
