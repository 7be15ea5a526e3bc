"""The desk tried as the docs tell a person to, on `hotline up`: a caller who presses 0 and waits,
an operator's phone played by `hotline call --operator` that accepts, talks, and hands the caller
to engineering's on-call after talking to them first (the same command plays the on-call's phone).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from intake.config import DEFAULT_CONFIG_PATH
from intake.db import session_factory
from intake.models import Call, DeskCall, DeskTransfer
from tests.processes import HotlineUp

OPERATOR = "operator@hotline.localhost"


def _always_open(folder: Path) -> Path:
    """The shipped configuration, open every hour of every day (the test must not depend on when
    it runs: out of hours a caller who presses 0 leaves a voicemail instead)."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG_PATH).read_text(encoding="utf-8"))
    config["holidays"] = {"country": None}
    config["business_hours"] = {
        day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    path = folder / "always_open.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _a_caller_and_the_operator(
    up: HotlineUp, *operator_args: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """The operator signs on; a caller presses 1 (Mandarin) then 0 and waits; `hotline call
    --operator` plays the operator's phone with `operator_args`. What each of them heard."""
    signed_on = up.hotline("operators", "state", OPERATOR, "available", "--device", "+886911000001")
    assert signed_on.returncode == 0, signed_on.stderr
    caller = up.popen(
        "call", "--no-interactive", "--from", "+886955000001", *("--press", "1", "--press", "0")
    )
    try:
        operator = up.hotline("call", "--operator", OPERATOR, *operator_args, timeout=300)
        heard_by_caller, _ = caller.communicate(timeout=120)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert operator.returncode == 0, operator.stdout + operator.stderr
    assert caller.returncode == 0, heard_by_caller
    return operator, heard_by_caller


@pytest.mark.slow
def test_a_caller_waits_an_operator_answers_and_hands_over_warm(tmp_path: Path) -> None:
    with HotlineUp(tmp_path, config=_always_open(tmp_path)) as up:
        up.wait_until_serving()
        operator, heard_by_caller = _a_caller_and_the_operator(
            up, "--talk", "3", "--transfer", "engineering", "--warm"
        )

        # The operator heard who was calling and took the call; the on-call heard who handed over.
        assert "[cmn-TW] 來電：+886955000001，國語，未結案件0件。接聽請按1。" in operator.stdout
        assert "to +886912345001: answered" in operator.stdout
        assert "[cmn-TW] 林接線員轉接來電：+886955000001。接聽請按1。" in operator.stdout
        # The caller waited first in line, was put through, and stayed on until the on-call left.
        assert "[cmn-TW] 您目前排在第1位。" in heard_by_caller
        assert "[cmn-TW] 正在為您接通客服人員。" in heard_by_caller
        assert "== call ended (app)" in heard_by_caller

        listed = up.hotline("operators", "list", "--format", "json")
        states = {row["email"]: row["state"] for row in json.loads(listed.stdout)}
        assert states[OPERATOR] in ("wrap_up", "available")

        with session_factory(up.database_url)() as session:
            [desk_call] = session.scalars(select(DeskCall)).all()
            [transfer] = session.scalars(select(DeskTransfer)).all()
            call = session.get(Call, desk_call.call_id)
            assert call is not None and call.from_number == "+886955000001"
            assert (transfer.mode, transfer.target, transfer.status) == (
                "warm",
                "engineering",
                "completed",
            )
            assert transfer.ended_at is not None  # the on-call hung up in the end
            assert (desk_call.status, desk_call.disposition) == ("ended", "transferred")


@pytest.mark.slow
def test_when_nobody_on_call_answers_a_warm_transfer_the_caller_is_back_with_the_operator(
    tmp_path: Path,
) -> None:
    """Both of engineering's on-call numbers ring out in turn; the caller, on hold meanwhile, is
    back with the operator, who finishes the call."""
    with HotlineUp(tmp_path, config=_always_open(tmp_path)) as up:
        up.wait_until_serving()
        operator, heard_by_caller = _a_caller_and_the_operator(
            up, "--talk", "3", "--transfer", "engineering", "--warm", "--target-ignores"
        )

        assert "to +886912345001: no-answer" in operator.stdout
        assert "to +886912345002: no-answer" in operator.stdout
        assert "nobody took the transfer: the caller is back on the line" in operator.stdout
        assert "[cmn-TW] 正在為您接通客服人員。" in heard_by_caller
        assert "== call ended" in heard_by_caller  # never dropped while the numbers rang

        with session_factory(up.database_url)() as session:
            [desk_call] = session.scalars(select(DeskCall)).all()
            [transfer] = session.scalars(select(DeskTransfer)).all()
            assert (transfer.mode, transfer.status, transfer.number_index) == ("warm", "failed", 1)
            assert desk_call.status == "ended" and desk_call.disposition != "transferred"
