"""The desk on the command line, offline: a caller who really waits (`hotline call --press 0`)
and an operator's phone (`hotline call --operator EMAIL`), following what the app recorded in the
database where Twilio would have carried it out (local mode: no Twilio account)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake import desk
from intake.config import Settings
from intake.db import session_factory
from intake.models import Call, DeskCall, DeskOffer, DeskTransfer, Operator
from voice.simulator import CallResult, CallSimulator

POLL_SECONDS = 1.0


class LocalCaller:
    """Hooks for a simulated caller: wait in the queue until the app moves the call, stay in the
    conference until it ends (or `talk` seconds, then hang up)."""

    def __init__(self, settings: Settings, *, talk: int | None, max_wait: float = 900) -> None:
        self.sessions = session_factory(settings.database_url)
        self.talk = talk
        self.max_wait = max_wait
        self.followed = 0

    def _redirect(self, sid: str) -> str | None:
        with self.sessions() as session:
            call = session.scalar(select(Call).where(Call.call_sid == sid))
            moves = list(((call.meta or {}) if call else {}).get("desk_redirects") or [])
        if len(moves) > self.followed:
            self.followed = len(moves)
            return str(moves[-1])
        return None

    def on_queue_wait(self, sid: str) -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            moved = self._redirect(sid)
            if moved:
                return moved
            time.sleep(POLL_SECONDS)
        return None  # another round of hold music (the app counts the wait)

    def on_conference(self, sid: str, name: str) -> tuple[str, str]:
        started = time.monotonic()
        while True:
            talked = str(int(time.monotonic() - started))
            moved = self._redirect(sid)
            if moved:
                return "redirect", moved
            with self.sessions() as session:
                desk_call = session.scalar(select(DeskCall).where(DeskCall.call_sid == sid))
                if desk_call is None or desk_call.status not in (desk.CONNECTED, desk.WAITING):
                    return "ended", talked
            if self.talk is not None and time.monotonic() - started >= self.talk:
                return "hangup", talked
            time.sleep(POLL_SECONDS)


def play_operator(
    settings: Settings,
    email: str,
    make_simulator: Callable[..., CallSimulator],
    *,
    ignore: bool,
    talk: int,
    transfer: str | None,
    wait_seconds: float,
    echo: Callable[[str], None],
    warm: bool = False,
    target_answers: bool = True,
) -> CallResult | None:
    """Wait for an offer to ring `email`'s phone, hear the whisper, accept (or not), talk,
    transfer (warm: also play the target's phone, which takes the caller or, without
    `target_answers`, rings out so that the caller comes back), hang up."""
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        operator = session.scalar(select(Operator).where(Operator.email == email.lower()))
        if operator is None:
            raise click.ClickException(f"no operator {email}")
        operator_id = operator.id
        device = desk.presence(session, operator).device or ""
        session.commit()
    echo(f"== {email} waits for a call (up to {int(wait_seconds)} s)")
    deadline = time.monotonic() + wait_seconds
    offer_id, sid = None, None
    while time.monotonic() < deadline:
        with sessions() as session:
            offer = session.scalar(
                select(DeskOffer).where(
                    DeskOffer.operator_id == operator_id,
                    DeskOffer.status == "ringing",
                    DeskOffer.call_sid.is_not(None),
                )
            )
            if offer is not None:
                offer_id, sid = offer.id, offer.call_sid
                break
        time.sleep(POLL_SECONDS / 2)
    if offer_id is None or sid is None:
        echo("== no call was offered")
        return None
    target_results: list[CallResult | None] = []

    def caller_left() -> bool:
        with sessions() as session:
            row = session.get(DeskOffer, offer_id)
            desk_call = session.get(DeskCall, row.desk_call_id) if row else None
            return desk_call is None or desk_call.status != desk.CONNECTED

    def transfer_the_caller() -> int | None:
        with sessions() as session:
            desk_call = session.scalar(
                select(DeskCall).join(DeskOffer).where(DeskOffer.id == offer_id)
            )
            op = session.get(Operator, operator_id)
            assert desk_call is not None and op is not None
            try:
                row = desk.request_transfer(
                    session,
                    desk_call,
                    transfer or "",
                    settings.config,
                    op,
                    mode="warm" if warm else "cold",
                )
            except ValueError as exc:
                echo(f"!! the transfer was refused: {exc}")
                return None
            session.commit()
            transfer_id = row.id
        echo(f"   (transfers the caller to {transfer}{', talking to them first' if warm else ''})")
        return transfer_id

    def in_conference(_sid: str, _name: str) -> tuple[str, str]:
        started = time.monotonic()

        def talked() -> str:
            return str(int(time.monotonic() - started))

        if transfer:
            time.sleep(min(talk, 5))
            transfer_id = transfer_the_caller()
            if transfer_id is not None and warm:
                target = threading.Thread(
                    target=lambda: target_results.append(
                        play_transfer_target(
                            settings,
                            transfer_id,
                            make_simulator,
                            talk=talk,
                            echo=echo,
                            answers=target_answers,
                        )
                    ),
                    daemon=True,
                )
                target.start()
                if _consulted(sessions, transfer_id):
                    echo("   (talks with the target, then hangs up to hand the caller over)")
                    time.sleep(2)
                    return "hangup", talked()
                echo("   (nobody took the transfer: the caller is back on the line)")
            elif transfer_id is not None:
                while time.monotonic() - started < 60 and not _moved_out(sessions, offer_id):
                    time.sleep(POLL_SECONDS)
                return "ended", talked()
        while time.monotonic() - started < talk:
            if caller_left():
                return "ended", talked()
            time.sleep(POLL_SECONDS)
        return "hangup", str(talk)

    simulator = make_simulator(on_conference=in_conference)
    base = settings.public_base_url.rstrip("/")
    played = simulator.answer(
        sid,
        f"{base}/voice/desk/whisper?offer={offer_id}",
        f"{base}/voice/desk/offer-status?offer={offer_id}",
        from_number=settings.twilio_number or "+886227000000",
        to_number=device,
        outcome="no-answer" if ignore else "answered",
    )
    deadline = time.monotonic() + talk + 90
    while warm and transfer and not target_results and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS / 2)  # the target's phone stays on after the operator hung up
    for result in target_results:
        if result is not None:
            played.errors.extend(result.errors)
    return played


def _moved_out(sessions: sessionmaker[Session], offer_id: int) -> bool:
    """A cold transfer moved the caller's leg out of the conference (or the caller left)."""
    with sessions() as session:
        row = session.get(DeskOffer, offer_id)
        if row is None or row.status != "accepted":
            return True
        call = session.scalar(
            select(Call)
            .join(DeskCall, DeskCall.call_id == Call.id)
            .where(DeskCall.id == row.desk_call_id)
        )
        return call is not None and any(
            "/voice/desk/transfer" in u for u in (call.meta or {}).get("desk_redirects") or []
        )


def _consulted(sessions: sessionmaker[Session], transfer_id: int, wait: float = 120) -> bool:
    """Wait until the warm transfer's target took the caller (True) or nobody did (False)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.get(DeskTransfer, transfer_id)
            if row is None or row.status in ("failed", "canceled"):
                return False
            if row.status in ("consulting", "completed"):
                return True
        time.sleep(POLL_SECONDS / 2)
    return False


def play_transfer_target(
    settings: Settings,
    transfer_id: int,
    make_simulator: Callable[..., CallSimulator],
    *,
    talk: int,
    echo: Callable[[str], None],
    wait_seconds: float = 60,
    answers: bool = True,
) -> CallResult | None:
    """The phone a warm transfer rings (a department's on-call or a colleague): once the app has
    dialled it, hear who is handing which caller over, press the key, talk with the operator,
    keep the caller `talk` seconds after the hand-over, hang up. With `answers` false every
    number the app tries rings out, as when the on-call sleeps through it."""
    sessions = session_factory(settings.database_url)
    base = settings.public_base_url.rstrip("/")
    consult = f"{base}/voice/desk/consult?transfer={transfer_id}"
    consult_status = f"{base}/voice/desk/consult-status?transfer={transfer_id}"
    from_number = settings.twilio_number or "+886227000000"
    rung: set[str] = set()
    result = None
    while True:
        sid, number = _next_target_ringing(settings, sessions, transfer_id, rung, wait_seconds)
        if sid is None:
            if not rung:
                echo("== the transfer's target was never rung")
            return result
        rung.add(sid)
        if answers:
            break
        result = make_simulator().answer(
            sid,
            consult,
            consult_status,
            from_number=from_number,
            to_number=number,
            outcome="no-answer",
        )

    def with_the_caller(_sid: str, _name: str) -> tuple[str, str]:
        started, handed = time.monotonic(), None
        while True:
            talked = str(int(time.monotonic() - started))
            with sessions() as session:
                row = session.get(DeskTransfer, transfer_id)
                if row is None or row.desk_call.status != desk.CONNECTED:
                    return "ended", talked
                if row.status == "failed":
                    return "hangup", talked
                if row.status == "completed" and handed is None:
                    handed = time.monotonic()
                    echo("   (the target has the caller now)")
            if handed is not None and time.monotonic() - handed >= talk:
                return "hangup", talked
            time.sleep(POLL_SECONDS / 2)

    return make_simulator(on_conference=with_the_caller).answer(
        sid, consult, consult_status, from_number=from_number, to_number=number
    )


def _next_target_ringing(
    settings: Settings,
    sessions: sessionmaker[Session],
    transfer_id: int,
    rung: set[str],
    wait_seconds: float,
) -> tuple[str | None, str]:
    """The call the app placed to the transfer's next number (not one in `rung`) and that number;
    (None, "") once the transfer is no longer dialling or nothing new rang in time."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.get(DeskTransfer, transfer_id)
            if row is None or row.status != "dialling":
                return None, ""
            if row.target_call_sid and row.target_call_sid not in rung:
                numbers = desk.transfer_numbers(session, row, settings.config)
                number = numbers[row.number_index] if row.number_index < len(numbers) else ""
                return row.target_call_sid, number
        time.sleep(POLL_SECONDS / 2)
    return None, ""
