"""`hotline call`: the offline call simulator, signed exactly as Twilio signs."""

from __future__ import annotations

import os
import sys
import urllib.error
from typing import Any

import click
from sqlalchemy import select

from voice.simulator import CallSimulator, HttpTransport, Step, press, say


def _steps(args: list[str]) -> list[Step]:
    """--press/--say/--silence/--hangup in the order given, which click cannot keep across options."""
    steps: list[Step] = []
    items = iter(args)
    for arg in items:
        name, _, inline = arg.partition("=")
        if name in ("--press", "--say"):
            value = inline or next(items, None)
            if value is None:
                raise click.UsageError(f"{name} needs a value")
            steps.append(press(value) if name == "--press" else say(value))
        elif name == "--silence":
            steps.append(Step("silence"))
        elif name == "--hangup":
            steps.append(Step("hangup"))
        else:
            raise click.UsageError(f"unknown argument {arg!r}")
    return steps


def _queued_local_call(
    database_url: str, call_sid: str | None
) -> tuple[str, str, str | None, str, str]:
    from intake.db import session_factory
    from intake.models import Call

    with session_factory(database_url)() as session:
        query = select(Call).where(Call.direction == "outbound-api").order_by(Call.id)
        if call_sid:
            query = query.where(Call.call_sid == call_sid)
        else:
            query = query.where(Call.status == "queued")
        for call in session.scalars(query):
            meta = call.meta or {}
            if meta.get("local") and meta.get("url"):
                return (
                    call.call_sid,
                    meta["url"],
                    meta.get("status_callback"),
                    call.from_number or "",
                    call.to_number or "",
                )
    raise click.ClickException("no queued local outbound call to answer")


@click.command(
    "call",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=(
        "Caller actions, used in order at each prompt: --press DIGITS, --say WORDS, --silence, "
        "--hangup. When they run out the simulator asks on the keyboard (if a terminal) or stays silent."
    ),
)
@click.option(
    "--from", "from_number", default="+886912000001", show_default=True, help="Caller's number."
)
@click.option("--to", "to_number", default=None, help="Hotline number (default TWILIO_NUMBER).")
@click.option("--url", "server_url", default=None, help="Server to call (default PUBLIC_BASE_URL).")
@click.option(
    "--dial",
    "dial_outcomes",
    multiple=True,
    type=click.Choice(["completed", "no-answer", "busy", "failed"]),
    help="Outcome of each <Dial> in turn (default completed).",
)
@click.option(
    "--queue",
    "queue_outcome",
    default="wait",
    show_default=True,
    type=click.Choice(["wait", "bridged", "hangup", "queue-full"]),
    help="In <Enqueue>: wait for an operator (following the app's redirects), or pretend an outcome.",
)
@click.option("--operator", "operator_email", default=None, help="Play this operator's phone.")
@click.option("--ignore", is_flag=True, help="With --operator: let the offer ring out.")
@click.option(
    "--talk", default=None, type=int, help="Seconds to stay on a live call (operator: 20)."
)
@click.option(
    "--transfer",
    default=None,
    help="With --operator: transfer the caller to DEPARTMENT (or a colleague's EMAIL).",
)
@click.option(
    "--warm",
    is_flag=True,
    help="With --transfer: talk to the target first (this command also plays the target's phone).",
)
@click.option(
    "--target-ignores",
    is_flag=True,
    help="With --warm: the target's phone rings out (each on-call number in turn), and the "
    "caller comes back to the operator.",
)
@click.option(
    "--wait-seconds",
    default=120.0,
    show_default=True,
    help="With --operator: how long to wait for an offer.",
)
@click.option("--record-seconds", default=6, show_default=True, help="0 = an empty recording.")
@click.option("--duplicate-status", is_flag=True, help="Send every status callback twice.")
@click.option("--out-of-order", is_flag=True, help="Send the status callbacks in reverse order.")
@click.option(
    "--answer",
    "answer",
    is_flag=False,
    flag_value="oldest",
    default=None,
    help="Answer a queued local outbound call (the oldest, or CALL_SID).",
    metavar="[CALL_SID]",
)
@click.option("--machine", is_flag=True, help="With --answer: an answering machine picks up.")
@click.option("--no-answer", "no_answer", is_flag=True, help="With --answer: nobody picks up.")
@click.option(
    "--interactive/--no-interactive", default=None, help="Ask for input when the script runs out."
)
@click.pass_context
def call_cmd(
    ctx: click.Context,
    from_number: str,
    to_number: str | None,
    server_url: str | None,
    dial_outcomes: tuple[str, ...],
    queue_outcome: str,
    record_seconds: int,
    duplicate_status: bool,
    out_of_order: bool,
    answer: str | None,
    machine: bool,
    no_answer: bool,
    interactive: bool | None,
    operator_email: str | None,
    ignore: bool,
    talk: int | None,
    transfer: str | None,
    warm: bool,
    target_ignores: bool,
    wait_seconds: float,
) -> None:
    """Play Twilio's part of a call against the hotline: signed webhooks, TwiML, status callbacks."""
    from intake.cli import settings_or_exit

    settings = settings_or_exit()
    steps = _steps(list(ctx.args))
    if interactive is None:
        interactive = sys.stdin.isatty()
    # Signed for the address the server checks: PUBLIC_BASE_URL when set, else the one called
    # (a local `hotline up --port N` checks against http://127.0.0.1:N).
    public = (
        settings.public_base_url
        if os.environ.get("PUBLIC_BASE_URL") or not server_url
        else server_url.rstrip("/")
    )
    target = server_url or settings.public_base_url
    from voice.desk_cli import LocalCaller, play_operator

    waiting = LocalCaller(settings, talk=talk) if queue_outcome == "wait" else None

    def make(**hooks: Any) -> CallSimulator:
        return CallSimulator(
            HttpTransport(public, target),
            settings.webhook_auth_token,
            public,
            steps=[press("1")] if not ignore else [],
            echo=click.echo,
            max_requests=1000,
            **hooks,
        )

    if operator_email:
        played = play_operator(
            settings,
            operator_email,
            make,
            ignore=ignore,
            talk=talk if talk is not None else 20,
            transfer=transfer,
            warm=warm,
            target_answers=not target_ignores,
            wait_seconds=wait_seconds,
            echo=click.echo,
        )
        if played is not None and played.errors:
            raise click.ClickException("; ".join(played.errors))
        return
    simulator = CallSimulator(
        HttpTransport(public, target),
        settings.webhook_auth_token,
        public,
        steps=steps,
        dial_outcomes=list(dial_outcomes),
        queue_outcome="bridged" if queue_outcome == "wait" else queue_outcome,
        on_queue_wait=waiting.on_queue_wait if waiting else None,
        on_conference=waiting.on_conference if waiting else None,
        max_requests=1000 if waiting else 60,
        record_seconds=record_seconds,
        duplicate_status=duplicate_status,
        out_of_order=out_of_order,
        ask=(lambda prompt: click.prompt(prompt, default="", show_default=False))
        if interactive
        else None,
        echo=click.echo,
    )
    try:
        result = _run(simulator, settings, answer, machine, no_answer, from_number, to_number)
    except (urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"nothing answers at {target} ({reason}): start the hotline first "
            f"(`hotline up`, or `hotline web`), or give its address with --url"
        ) from None
    if result.errors:
        raise click.ClickException("; ".join(result.errors))


def _run(
    simulator: CallSimulator,
    settings: Any,
    answer: str | None,
    machine: bool,
    no_answer: bool,
    from_number: str,
    to_number: str | None,
) -> Any:
    if answer is not None:
        sid, url, status_callback, from_, to = _queued_local_call(
            settings.database_url, None if answer == "oldest" else answer
        )
        return simulator.answer(
            sid,
            url,
            status_callback,
            from_number=from_,
            to_number=to,
            answered_by="machine_end_beep" if machine else "human",
            outcome="no-answer" if no_answer else "answered",
        )
    return simulator.call(from_number, to_number or settings.twilio_number or "+886227000000")


def commands() -> list[click.Command]:
    return [call_cmd]
