"""`hotline call` against `hotline up`: the same signed calls a demonstration makes, end to end.

Without Twilio credentials both share the generated local auth token; a simulator holding another
token is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import HotlineUp, wait_for


@pytest.mark.slow
def test_calls_through_hotline_up_in_three_languages(tmp_path: Path) -> None:
    with HotlineUp(tmp_path) as up:
        up.wait_until_serving()
        calls = [
            ["--from", "+886955000001", "--press", "2", "--press", "1", "--say", "廚房個水喉漏水"],
            [
                "--from",
                "+886955000002",
                "--press",
                "3",
                "--press",
                "9",
                "--dial",
                "no-answer",
                "--dial",
                "no-answer",
                "--dial",
                "no-answer",
                "--say",
                "smoke in the corridor",
            ],
            ["--from", "+886912000001", "--press", "2", "--say", "樓上半夜很吵，投訴噪音"],
        ]
        outputs = []
        for args in calls:
            done = up.hotline("call", "--no-interactive", *args)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)
        assert "[yue-HK] 你嘅報修已經受理" in outputs[0]
        assert "[en-US] We have recorded your emergency" in outputs[1]
        assert "[cmn-TW] 陳大文您好" in outputs[2]

        def routed() -> list[dict[str, object]] | None:
            out = up.hotline("tickets", "list", "--format", "json")
            tickets = json.loads(out.stdout) if out.returncode == 0 else []
            return (
                tickets
                if len(tickets) == 3 and all(t["status"] == "routed" for t in tickets)
                else None
            )

        tickets = {
            t["category"]: t for t in wait_for(routed, 90, "the worker to route three call tickets")
        }
        assert tickets["emergency"]["priority"] == "P1" and tickets["emergency"]["language"] == "en"
        assert (
            tickets["repair"]["channel"] == "voice"
            and tickets["complaint"]["contact_phone"] == "+886912000001"
        )
        up.env["TWILIO_AUTH_TOKEN"] = "not-the-local-token"
        refused = up.hotline("call", "--no-interactive", "--press", "1")
        assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
