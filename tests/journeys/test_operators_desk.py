"""The operators' desk: live callers reach a person.

Two operators at the desk, three callers in two languages. 林接線員 (Mandarin) misses her first
offer, so 陳大文 is offered to 李接線員 (Mandarin and English), who takes him, files a ticket while
talking and transfers him to engineering's on-call. An unknown caller hangs up while being offered
(the offer stops ringing; a callback is owed). Emily Carter (English) waits for 李接線員's wrap-up
and is answered. Every caller reaches exactly one operator or a callback, and the wallboard's
figures are the ones the story makes.

Each phone (callers and operators) is played by the call simulator in its own thread, but only one
thing runs at a time: the test hands the turn to a phone and gets it back when that phone waits
(in the queue, or in a conference), so the story is deterministic.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from intake import desk
from intake.calendar import is_open
from intake.cli import main
from intake.models import (
    Attachment,
    Call,
    DeskCall,
    DeskOffer,
    DeskTransfer,
    Operator,
    Ticket,
)
from tests.journeys.conftest import HOTLINE, World
from tests.ops.metrics_helpers import value
from tests.voice.conftest import check_twiml
from voice.signature import sign
from voice.simulator import CallResult, CallSimulator, Step, press

TAIPEI = ZoneInfo("Asia/Taipei")
LIN = "operator@hotline.localhost"
LEE = "lee@hotline.localhost"
SUPERVISOR = "supervisor@hotline.localhost"
LIN_PHONE = "+886911000001"
LEE_PHONE = "+886911000002"
CHAN = "+886912000001"  # 陳大文, A座 12F-1, Mandarin
EMILY = "+886912000005"  # Emily Carter, English
STRANGER = "+886955123456"


def taipei(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2030, 10, 14, hour, minute, second, tzinfo=TAIPEI)  # a Monday


class Phone:
    """One phone played in its own thread; the test and the phone take turns."""

    def __init__(self, world: World, steps: list[Step], run: Callable[[CallSimulator], CallResult]):
        self.world = world
        self._to_phone: queue.Queue[Any] = queue.Queue()
        self._to_test: queue.Queue[tuple[str, str]] = queue.Queue()
        self.result: CallResult | None = None
        self.sid = ""
        self._used: set[int] = set()
        simulator = world.simulator(
            steps, on_queue_wait=self._queued, on_conference=self._conference
        )
        self.simulator = simulator
        self.thread = threading.Thread(target=self._main, args=(run, simulator), daemon=True)
        self.thread.start()
        self.state, self.detail = self._to_test.get(timeout=60)

    def _main(self, run: Callable[[CallSimulator], CallResult], simulator: CallSimulator) -> None:
        try:
            self.result = run(simulator)
        finally:
            self._to_test.put(("ended", ""))

    def _queued(self, sid: str) -> str | None:
        self.sid = sid
        self._to_test.put(("queued", sid))
        return self._to_phone.get(timeout=60)  # type: ignore[no-any-return]

    def _conference(self, sid: str, name: str) -> tuple[str, str]:
        self.sid = sid
        self._to_test.put(("conference", name))
        return self._to_phone.get(timeout=60)  # type: ignore[no-any-return]

    def send(self, command: Any) -> str:
        self._to_phone.put(command)
        self.state, self.detail = self._to_test.get(timeout=60)
        if self.state == "ended":
            self.thread.join(timeout=30)
            assert self.result is not None
            check_twiml(self.result)
        return self.state

    def redirect(self) -> str | None:
        """Where the app moved this call through Twilio's REST API (the newest not yet followed)."""
        for n, request in enumerate(self.world.twilio.requests):
            if (
                n not in self._used
                and request["method"] == "POST"
                and request["uri"].endswith(f"/Calls/{self.sid}.json")
                and (request["data"] or {}).get("Url")
            ):
                self._used.add(n)
                return str(request["data"]["Url"])
        return None

    def heard(self) -> str:
        """Everything said to this phone so far."""
        return self.simulator._result.text()

    def hold_on(self) -> str:
        """Another round of hold music (the app's hold document is asked for again)."""
        return self.send(self.redirect())


def caller(world: World, number: str, steps: list[Step]) -> Phone:
    return Phone(world, steps, lambda sim: sim.call(number, HOTLINE))


def operator_phone(world: World, device: str, steps: list[Step]) -> Phone:
    """The operator's phone rings (the oldest call to it nobody answered) and is picked up."""
    placed = _next_placed(world, device)
    return Phone(
        world,
        steps,
        lambda sim: sim.answer(
            placed["sid"],
            placed["Url"],
            placed.get("StatusCallback"),
            from_number=placed["From"],
            to_number=placed["To"],
        ),
    )


def _next_placed(world: World, device: str) -> dict[str, Any]:
    for created, placed in zip(world.twilio.calls, world.placed_calls(), strict=False):
        if created["sid"] not in world._answered_calls and placed["To"] == device:
            world._answered_calls.add(created["sid"])
            return {**placed, "sid": created["sid"]}
    raise AssertionError("no operator's phone is ringing")


def live(world: World, email: str) -> dict[str, Any]:
    response = world.console(email).get("/desk/live.json")
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def test_two_operators_three_callers_each_reach_one_operator_or_a_callback(world: World) -> None:
    assert is_open(taipei(10, 0), world.settings.config)
    made = CliRunner().invoke(
        main,
        [
            "create-operator",
            "--email",
            LEE,
            "--password",
            "hotline-demo",
            "--role",
            "operator",
            "--name",
            "李接線員",
        ],
    )
    assert made.exit_code == 0, made.output

    # Both operators sign on: 林 first, so she has been idle longest.
    world.at(taipei(9, 58))
    CliRunner().invoke(
        main,
        ["operators", "state", LIN, "available", "--languages", "zh-Hant", "--device", LIN_PHONE],
    )
    world.at(taipei(9, 59))
    lee_console = world.console(LEE)
    assert lee_console.post("/desk/presence", {"state": "available"}).status_code in (302, 303)
    CliRunner().invoke(
        main,
        [
            "operators",
            "state",
            LEE,
            "available",
            "--languages",
            "zh-Hant,en",
            "--device",
            LEE_PHONE,
        ],
    )
    states = {o["email"]: o for o in world.hotline("operators", "list", "--format", "json")}
    assert states[LIN]["state"] == states[LEE]["state"] == "available"
    assert states[LEE]["languages"] == ["zh-Hant", "en"]

    # 10:00 陳大文 presses 0: the longest-idle Mandarin speaker, 林, is rung, and sees him at once.
    world.at(taipei(10, 0))
    chan = caller(world, CHAN, [press("0")])
    assert chan.state == "queued"
    pop = live(world, LIN)["call"]
    assert pop["phase"] == "ringing"
    assert pop["resident"]["name"] == "陳大文" and "12F-1" in pop["unit"]
    world.drain()
    assert [c["To"] for c in world.placed_calls()] == [LIN_PHONE]

    # 林 does not answer: the offer goes to 李 (an offer unanswered).
    world.at(taipei(10, 0, 20))
    _placed, unanswered = world.answer_next_call([], outcome="no-answer")
    assert chan.hold_on() == "queued"
    world.drain()
    assert [c["To"] for c in world.placed_calls()] == [LIN_PHONE, LEE_PHONE]

    # 李 answers, hears who is calling, presses 1; the caller is moved into her conference.
    world.at(taipei(10, 0, 25))
    lee = operator_phone(world, LEE_PHONE, [press("1")])
    assert lee.state == "conference"
    assert "陳大文" in lee.heard() and "12F-1" in lee.heard()
    world.drain()
    assert chan.hold_on() == "conference"
    assert live(world, LEE)["call"]["phase"] == "talking"
    assert _state(world, LEE) == "on_call"

    # 10:00:40 an unknown number asks for a person: 林 is offered the call, the screen pop says
    # "unknown number"; the caller hangs up while it rings: the offer is cancelled.
    world.at(taipei(10, 0, 40))
    stranger = caller(world, STRANGER, [press("1"), press("0")])
    assert stranger.state == "queued"
    assert live(world, LIN)["call"]["resident"] is None
    world.drain()
    world.at(taipei(10, 0, 50))
    metrics = world.web.get("/metrics").get_data(as_text=True)  # Prometheus sees the same
    assert value(metrics, "hotline_desk_callers_waiting") == 1
    assert value(metrics, "hotline_desk_longest_wait_seconds") == 10
    assert value(metrics, "hotline_desk_operators", state="on_call") == 1
    assert stranger.send("hangup") == "ended"
    world.drain()
    stopped = [
        r
        for r in world.twilio.requests
        if r["method"] == "POST" and "/Calls/CA" in r["uri"] and (r["data"] or {}).get("Status")
    ]
    assert stopped, "the ringing offer was not stopped"
    assert live(world, LIN)["call"] is None

    # 10:01 李 files a ticket for the live call and transfers 陳大文 to engineering's on-call.
    world.at(taipei(10, 1))
    desk_call_id = live(world, LEE)["call"]["desk_call_id"]
    filed = lee_console.post(
        f"/desk/calls/{desk_call_id}/ticket",
        {
            "category": "repair",
            "priority": "P3",
            "description": "浴室天花板漏水，樓上單位疑似水管破裂",
        },
    )
    assert filed.status_code in (302, 303)
    again = lee_console.post(
        f"/desk/calls/{desk_call_id}/ticket",
        {
            "category": "repair",
            "priority": "P3",
            "description": "浴室天花板漏水，樓上單位疑似水管破裂",
        },
    )
    assert again.status_code in (302, 303)
    ref = live(world, LEE)["call"]["ticket_ref"]
    assert ref
    assert lee_console.post(
        f"/desk/calls/{desk_call_id}/transfer", {"department": "engineering"}
    ).status_code in (302, 303)
    world.drain()
    assert chan.send(("redirect", chan.redirect())) == "ended"  # on-call answers; he is done
    assert chan.result is not None and "轉接" in chan.result.text()
    assert lee.send(("ended", "35")) == "ended"  # the room closed when he left
    assert _state(world, LEE) == "wrap_up"

    # 10:01:20 Emily (English) asks for a person: 林 speaks no English, 李 is wrapping up.
    world.at(taipei(10, 1, 20))
    emily = caller(world, EMILY, [press("0")])
    assert emily.state == "queued"
    assert "no one" not in emily.heard()
    world.drain()
    assert rung(world) == [LIN_PHONE, LEE_PHONE, LIN_PHONE]  # nobody new
    world.at(taipei(10, 1, 31))  # 李's 30 s wrap-up is over at 10:01:30
    assert emily.hold_on() == "queued"
    world.drain()
    assert rung(world)[-1] == LEE_PHONE
    world.at(taipei(10, 1, 35))
    lee2 = operator_phone(world, LEE_PHONE, [press("1")])
    assert lee2.state == "conference"
    assert "Emily Carter" in lee2.heard()
    world.drain()
    assert emily.send(emily.redirect()) == "conference"
    world.at(taipei(10, 2, 35))
    assert lee2.send(("hangup", "60")) == "ended"
    assert emily.send(("ended", "60")) == "ended"
    emily_call = live(world, LEE)["call"]
    assert emily_call["phase"] == "wrap_up"
    assert lee_console.post(
        f"/desk/calls/{emily_call['desk_call_id']}/disposition",
        {"disposition": "information_given"},
    ).status_code in (302, 303)

    # Every caller reached exactly one operator, or is owed a callback.
    with world.sessions() as s:
        calls = {d.call_sid: d for d in s.scalars(select(DeskCall))}
        accepted = {
            d.call_sid: s.scalars(
                select(DeskOffer).where(
                    DeskOffer.desk_call_id == d.id, DeskOffer.status.in_(("accepted", "done"))
                )
            ).all()
            for d in calls.values()
        }
        by_number = {d.call.from_number: d for d in calls.values()}
        assert by_number[CHAN].transferred_to == "engineering"
        assert by_number[CHAN].ticket_id is not None
        assert by_number[EMILY].disposition == "information_given"
        assert by_number[STRANGER].status == "abandoned"
        for number in (CHAN, EMILY):
            assert len(accepted[by_number[number].call_sid]) == 1
        assert accepted[by_number[STRANGER].call_sid] == []
    owed = world.hotline("callbacks", "list", "--format", "json")
    assert [c["phone"] for c in owed if c["phone"] == STRANGER]
    shown = world.hotline("tickets", "show", ref, "--format", "json")
    assert any(e["kind"] == "call" for e in shown["timeline"])
    handled = [e for e in shown["events"] if e["kind"] == "call_handled"]
    assert [(e["actor"], e["data"]["talk_seconds"]) for e in handled] == [(LEE, 35)]
    page = lee_console.get(f"/tickets/{ref}").get_data(as_text=True)
    assert "客服通話結束" in page and "通話 35 秒" in page

    # The wallboard: 3 offered, 2 answered, 1 abandoned; 1 of 3 within 20 s; ASA (25+15)/2;
    # AHT ((35+30)+(60+30))/2.
    world.at(taipei(10, 3))
    board = world.console(SUPERVISOR).get("/wallboard.json").get_json()
    assert board["offered"] == 3 and board["answered"] == 2 and board["abandoned"] == 1
    assert board["waiting"] == 0
    assert board["service_level"] == 33.3
    assert board["asa_seconds"] == 20.0
    assert board["aht_seconds"] == 77.5
    assert board["operators"]["available"] == 1 and board["operators"]["wrap_up"] == 1
    metrics = world.web.get("/metrics").get_data(as_text=True)
    for outcome, n in (("offered", 3), ("answered", 2), ("abandoned", 1)):
        assert value(metrics, "hotline_desk_calls_today", outcome=outcome) == n, outcome
        assert value(metrics, "hotline_desk_calls_total", outcome=outcome) == n, outcome
    assert value(metrics, "hotline_desk_callers_waiting") == 0
    assert value(metrics, "hotline_desk_operators", state="wrap_up") == 1
    assert round(value(metrics, "hotline_desk_service_level_ratio"), 3) == 0.333
    world.at(taipei(10, 4))  # 李's wrap-up is over
    board = world.console(SUPERVISOR).get("/wallboard.json").get_json()
    assert board["operators"]["available"] == 2 and board["operators"]["on_call"] == 0
    page = world.console(SUPERVISOR).get("/wallboard").get_data(as_text=True)
    assert "33%" in page
    # The dashboard's desk figures by day are the wallboard's, and so is its CSV.
    supervisor = world.console(SUPERVISOR)
    dashboard = supervisor.get("/dashboard?from=2030-10-13&to=2030-10-14").get_data(as_text=True)
    row = dashboard.split('id="desk"')[1].split("</tr>")[1]
    assert ">10-14<" in row and "<td>3</td><td>2</td><td>1</td><td>33.3%</td>" in row
    desk_csv = supervisor.get("/reports/desk.csv?from=2030-10-13&to=2030-10-14").get_data(True)
    assert desk_csv.lstrip("\ufeff").splitlines()[1:] == [
        "2030-10-14,3,2,1,33.3,20.0,77.5",
        "total,3,2,1,33.3,20.0,77.5",
    ]
    assert unanswered is not None


def rung(world: World) -> list[str]:
    """The operators' phones the app rang, in order (not the residents called back)."""
    return [c["To"] for c in world.placed_calls() if c["To"] in (LIN_PHONE, LEE_PHONE)]


def _state(world: World, email: str) -> str:
    return {o["email"]: o["state"] for o in world.hotline("operators", "list", "--format", "json")}[
        email
    ]


# --- the desk's edges: racing distributors, a double-pressed key, missed offers, max wait ---


def _sign_on(world: World, email: str, device: str, languages: str = "zh-Hant") -> None:
    result = CliRunner().invoke(
        main,
        ["operators", "state", email, "available", "--languages", languages, "--device", device],
    )
    assert result.exit_code == 0, result.output


def _add_lee() -> None:
    made = CliRunner().invoke(
        main,
        ["create-operator", "--email", LEE, "--password", "hotline-demo", "--role", "operator"],
    )
    assert made.exit_code == 0, made.output


def _post(world: World, path: str, params: dict[str, str]) -> tuple[int, str]:
    url = world.settings.public_base_url + path
    headers = {"X-Twilio-Signature": sign(world.settings.webhook_auth_token, url, params)}
    response = world.web.post(path, data=params, headers=headers)
    return response.status_code, response.get_data(as_text=True)


def test_it_offers_a_caller_to_one_operator_however_many_processes_distribute(world: World) -> None:
    _add_lee()
    world.at(taipei(10, 0))
    _sign_on(world, LIN, LIN_PHONE)
    _sign_on(world, LEE, LEE_PHONE)
    with world.sessions() as s:
        call = Call(
            call_sid="CA" + "1" * 32, direction="inbound", from_number=CHAN, language="zh-Hant"
        )
        s.add(call)
        s.flush()
        desk.enter_queue(s, call)
        s.commit()
    barrier = threading.Barrier(4)
    made: list[int] = []

    def distributor() -> None:
        with world.sessions() as s:
            barrier.wait()
            made.extend(desk.distribute(s, world.settings.config))
            s.commit()

    threads = [threading.Thread(target=distributor) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with world.sessions() as s:
        live = s.scalar(select(func.count(DeskOffer.id)).where(DeskOffer.status == "ringing"))
    assert live == 1 and len(made) == 1


def test_a_key_pressed_twice_bridges_the_caller_once(world: World) -> None:
    world.at(taipei(10, 0))
    _sign_on(world, LIN, LIN_PHONE)
    chan = caller(world, CHAN, [press("0")])
    world.drain()
    lin = operator_phone(world, LIN_PHONE, [press("1")])
    assert lin.state == "conference"
    with world.sessions() as s:
        offer = s.scalars(select(DeskOffer)).one()
    status, body = _post(
        world,
        f"/voice/desk/accept?offer={offer.id}",
        {"CallSid": offer.call_sid or "", "Digits": "1"},
    )
    assert status == 200 and "<Conference" not in body and "<Hangup" in body
    world.drain()
    bridges = [
        r
        for r in world.twilio.requests
        if r["method"] == "POST" and r["uri"].endswith(f"/Calls/{chan.sid}.json")
    ]
    assert len(bridges) == 1
    assert chan.hold_on() == "conference"
    assert lin.send(("hangup", "10")) == "ended"
    assert chan.send(("ended", "10")) == "ended"


def test_an_operator_who_misses_two_offers_in_a_row_is_set_away(world: World) -> None:
    world.at(taipei(10, 0))
    _sign_on(world, LIN, LIN_PHONE)
    chan = caller(world, CHAN, [press("0")])
    world.drain()
    world.answer_next_call([], outcome="no-answer")
    world.at(taipei(10, 0, 30))
    assert chan.hold_on() == "queued"  # a second round: offered to her again (nobody else)
    world.drain()
    world.answer_next_call([], outcome="busy")
    states = {
        o["email"]: o["state"] for o in world.hotline("operators", "list", "--format", "json")
    }
    assert states[LIN] == "away"
    assert chan.send("hangup") == "ended"


def test_an_offer_whose_phone_status_never_comes_rings_out_to_the_next_operator(
    world: World,
) -> None:
    """Twilio's status callback for the operator's leg can be lost: after `ring_seconds` (and a
    few seconds' grace) the caller's hold loop gives the caller to the next operator."""
    _add_lee()
    world.at(taipei(10, 0))
    _sign_on(world, LIN, LIN_PHONE)
    _sign_on(world, LEE, LEE_PHONE)
    ring = world.settings.config.voice.desk.ring_seconds
    chan = caller(world, CHAN, [press("0")])
    world.drain()
    assert rung(world) == [LIN_PHONE]
    lin_call = world.twilio.calls[-1]["sid"]
    world.at(taipei(10, 0) + timedelta(seconds=ring + 4))
    assert chan.hold_on() == "queued"
    world.drain()
    assert rung(world) == [LIN_PHONE]  # still within the grace
    world.at(taipei(10, 0) + timedelta(seconds=ring + 6))
    assert chan.hold_on() == "queued"
    world.drain()
    assert rung(world) == [LIN_PHONE, LEE_PHONE]
    stopped = [
        r["data"]
        for r in world.twilio.requests
        if r["method"] == "POST" and r["uri"].endswith(f"/Calls/{lin_call}.json")
    ]
    assert stopped and stopped[0].get("Status") == "canceled"  # her phone stops ringing
    with world.sessions() as s:
        offers = {o.operator.email: o.status for o in s.scalars(select(DeskOffer))}
    assert offers == {LIN: "missed", LEE: "ringing"}
    assert _state(world, LIN) == "available"  # one miss: still at the desk
    assert chan.send("hangup") == "ended"


def test_after_the_maximum_wait_the_caller_leaves_a_voicemail(world: World) -> None:
    world.at(taipei(10, 0))
    chan = caller(world, CHAN, [press("0")])  # nobody is available
    world.at(taipei(10, 0) + timedelta(seconds=world.settings.config.voice.desk.max_wait_seconds))
    assert chan.hold_on() == "ended"
    assert chan.result is not None
    assert any("<Record" in e.body for e in chan.result.exchanges)
    with world.sessions() as s:
        assert s.scalars(select(DeskCall)).one().status == "voicemail"


def test_bad_desk_requests_get_clear_answers(world: World) -> None:
    assert _post(world, "/voice/desk/whisper", {"CallSid": "CA1"})[0] == 400
    assert _post(world, "/voice/desk/whisper?offer=999", {"CallSid": "CA1"})[0] == 404
    assert world.web.post("/voice/desk/whisper?offer=1", data={"CallSid": "CA1"}).status_code == 403
    assert _post(world, "/voice/desk/offer-status?offer=999", {"CallStatus": "completed"})[0] == 200
    wrong = CliRunner().invoke(main, ["operators", "state", "nobody@example.com", "available"])
    assert wrong.exit_code != 0 and "no operator" in wrong.output
    assert CliRunner().invoke(main, ["operators", "state", LIN, "on_call"]).exit_code == 2
    assert _post(world, "/voice/desk/consult?transfer=999", {"CallSid": "CA1"})[0] == 404
    assert _post(world, "/voice/desk/consult-accept", {"CallSid": "CA1", "Digits": "1"})[0] == 400
    assert _post(world, "/voice/desk/recording?desk=999", {"RecordingSid": "RE1"})[0] == 404
    assert _post(world, "/voice/desk/conference-event?desk=x", {"ConferenceSid": "CF1"})[0] == 400
    lin = world.console(LIN)
    assert lin.get("/desk/token.json").status_code == 503
    assert lin.post("/desk/calls/999/hand-over").status_code == 404
    assert lin.post("/desk/presence", {"state": "on_call"}).status_code == 400
    assert (
        lin.post("/desk/calls/999/disposition", {"disposition": "wrong_number"}).status_code == 404
    )
    with world.sessions() as s:
        assert s.scalar(select(Operator.id).where(Operator.email == LIN))


# --- warm transfer: the operator talks to the target first; the caller never drops ---------

ENGINEER_1, ENGINEER_2 = "+886912345001", "+886912345002"  # engineering's on-call, in turn


def _participant_updates(world: World, call_sid: str) -> list[dict[str, Any]]:
    """Hold / unhold requests the app sent to Twilio for one conference participant."""
    return [
        r["data"]
        for r in world.twilio.requests
        if r["method"] == "POST"
        and "/Conferences/CF" in r["uri"]
        and r["uri"].endswith(f"/Participants/{call_sid}.json")
    ]


def _hung_up(world: World, call_sid: str) -> bool:
    return any(
        r["method"] == "POST"
        and r["uri"].endswith(f"/Calls/{call_sid}.json")
        and (r["data"] or {}).get("Status") == "completed"
        for r in world.twilio.requests
    )


class _Recordings(BaseHTTPRequestHandler):
    """Twilio's recording media (a few bytes of WAV)."""

    audio = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/x-wav")
        self.send_header("Content-Length", str(len(self.audio)))
        self.end_headers()
        self.wfile.write(self.audio)

    def log_message(self, *args: Any) -> None:
        return


def _consults(world: World) -> list[str]:
    """The transfer targets the app rang, in order."""
    return [c["To"] for c in world.placed_calls() if "/voice/desk/consult" in c["Url"]]


def _target_phone(world: World, device: str, steps: list[Step], outcome: str) -> CallResult:
    """A transfer target's phone rings and is picked up (or not)."""
    for created, placed in zip(world.twilio.calls, world.placed_calls(), strict=False):
        if (
            created["sid"] not in world._answered_calls
            and placed["To"] == device
            and "/voice/desk/consult" in placed["Url"]
        ):
            world._answered_calls.add(created["sid"])
            result = world.simulator(steps).answer(
                created["sid"],
                placed["Url"],
                placed.get("StatusCallback"),
                from_number=placed["From"],
                to_number=device,
                outcome=outcome,
            )
            check_twiml(result)
            return result
    raise AssertionError(f"no transfer is ringing {device}")


def test_a_warm_transfer_consults_first_and_never_drops_the_caller(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: with recording on, the caller hears the consent phrase before the recorded
    conference, and the recording reaches the ticket's timeline."""
    monkeypatch.setattr(world.settings.config.voice.desk, "record_calls", True)
    _add_lee()
    world.at(taipei(10, 0))
    _sign_on(world, LIN, LIN_PHONE)
    away = CliRunner().invoke(main, ["operators", "state", LEE, "away", "--device", LEE_PHONE])
    assert away.exit_code == 0, away.output
    chan = caller(world, CHAN, [press("0")])
    world.drain()
    lin = operator_phone(world, LIN_PHONE, [press("1")])
    assert lin.state == "conference"
    world.drain()
    assert chan.hold_on() == "conference"
    heard = chan.heard()
    assert heard.index("本通話將會錄音") < heard.index("正在為您接通客服人員")
    joined = chan.simulator._result.exchanges[-2].body
    assert 'record="record-from-start"' in joined and "/voice/desk/recording" in joined
    console = world.console(LIN)
    desk_call_id = live(world, LIN)["call"]["desk_call_id"]
    assert console.post(
        f"/desk/calls/{desk_call_id}/ticket",
        {"category": "repair", "priority": "P3", "description": "廚房水龍頭一直滴水"},
    ).status_code in (302, 303)

    # 1. 林 asks her colleague 李 first: the caller is held, 李's phone rings and is not answered,
    # so the caller is back with 林 (off hold).
    world.at(taipei(10, 1))
    assert console.post(
        f"/desk/calls/{desk_call_id}/transfer", {"target": LEE, "mode": "warm"}
    ).status_code in (302, 303)
    world.drain()
    assert [u["Hold"] for u in _participant_updates(world, chan.sid)] == ["true"]
    assert "/voice/desk/on-hold" in _participant_updates(world, chan.sid)[0]["HoldUrl"]
    assert _consults(world) == [LEE_PHONE]
    assert live(world, LIN)["call"]["transfer"]["status"] == "dialling"
    world.at(taipei(10, 1, 20))
    _target_phone(world, LEE_PHONE, [], "no-answer")
    world.drain()
    assert [u["Hold"] for u in _participant_updates(world, chan.sid)] == ["true", "false"]
    assert live(world, LIN)["call"]["transfer"]["status"] == "failed"
    assert not _hung_up(world, chan.sid)

    # 2. Engineering's on-call: the first number rings out and Twilio's word of it is lost, so
    # after the ring timeout and 30 s more the second is tried; it answers, hears who is handing
    # over which caller, presses 1 and talks with 林 while the caller holds.
    world.at(taipei(10, 2))
    console.post(f"/desk/calls/{desk_call_id}/transfer", {"target": "engineering", "mode": "warm"})
    world.drain()
    assert _consults(world) == [LEE_PHONE, ENGINEER_1]
    world.at(taipei(10, 2, 45))
    world.drain()
    assert _consults(world) == [LEE_PHONE, ENGINEER_1], "not before ring timeout + 30 s"
    world.at(taipei(10, 2, 55))
    world.drain()
    assert _consults(world) == [LEE_PHONE, ENGINEER_1, ENGINEER_2]
    engineer = Phone(
        world,
        [press("1")],
        lambda sim: sim.answer(
            world.twilio.calls[-1]["sid"],
            world.placed_calls()[-1]["Url"],
            world.placed_calls()[-1].get("StatusCallback"),
            from_number=world.placed_calls()[-1]["From"],
            to_number=ENGINEER_2,
        ),
    )
    assert engineer.state == "conference"
    assert "林接線員轉接來電" in engineer.heard() and "陳大文" in engineer.heard()
    assert live(world, LIN)["call"]["transfer"]["status"] == "consulting"

    # 林 hands over from the console: her leg is hung up, the caller comes off hold with the
    # engineer, and 林 wraps up.
    world.at(taipei(10, 3))
    assert console.post(f"/desk/calls/{desk_call_id}/hand-over").status_code in (302, 303)
    world.drain()
    assert _hung_up(world, lin.sid)
    assert lin.send(("ended", "150")) == "ended"
    world.drain()
    assert [u["Hold"] for u in _participant_updates(world, chan.sid)][-1] == "false"
    assert _state(world, LIN) == "wrap_up"
    assert not _hung_up(world, chan.sid)

    # The engineer finishes; nobody is left on our side, so the app ends the caller's leg.
    world.at(taipei(10, 5))
    assert engineer.send(("hangup", "120")) == "ended"
    world.drain()
    assert _hung_up(world, chan.sid)
    assert chan.send(("ended", "270")) == "ended"

    with world.sessions() as s:
        desk_call = s.get(DeskCall, desk_call_id)
        assert desk_call is not None
        assert (desk_call.transferred_to, desk_call.disposition, desk_call.status) == (
            "engineering",
            "transferred",
            "ended",
        )
        ref = s.scalar(select(Ticket.ref).where(Ticket.id == desk_call.ticket_id))
    shown = world.hotline("tickets", "show", ref, "--format", "json")
    transfers = [
        (e["kind"], e["data"]["target"], e["data"]["mode"], e["actor"])
        for e in shown["events"]
        if e["kind"].startswith("call_transfer")
    ]
    assert transfers == [
        ("call_transfer_requested", LEE, "warm", LIN),
        ("call_transfer_failed", LEE, "warm", "system"),
        ("call_transfer_requested", "engineering", "warm", LIN),
        ("call_transferred", "engineering", "warm", LIN),
    ]
    page = console.get(f"/tickets/{shown['ref']}").get_data(as_text=True)
    assert "通話已轉接 · 林接線員 → 工程維修部（先通話後轉接）" in page

    # Twilio's recording of the conference arrives: it is on the ticket's timeline, playable.
    media = ThreadingHTTPServer(("127.0.0.1", 0), _Recordings)
    threading.Thread(target=media.serve_forever, daemon=True).start()
    recording = {
        "RecordingSid": "RE" + "7" * 32,
        "RecordingUrl": f"http://127.0.0.1:{media.server_port}/Recordings/RE{'7' * 32}",
        "RecordingStatus": "completed",
        "RecordingDuration": "270",
        "CallSid": chan.sid,
    }
    assert _post(world, f"/voice/desk/recording?desk={desk_call_id}", recording)[0] == 200
    assert _post(world, f"/voice/desk/recording?desk={desk_call_id}", recording)[0] == 200
    world.drain()
    shown = world.hotline("tickets", "show", ref, "--format", "json")
    media.shutdown()
    recorded = [i for i in shown["timeline"] if i["kind"] == "call_recording"]
    assert len(recorded) == 1
    with world.sessions() as s:
        audio = s.scalars(
            select(Attachment).where(Attachment.external_id == recording["RecordingSid"])
        ).one()
        assert audio.size == len(_Recordings.audio) and audio.sha256
    page = console.get(f"/tickets/{ref}").get_data(as_text=True)
    assert "通話錄音" in page and "<audio" in page


# --- the browser softphone: an Access Token, and offers and transfers that ring <Client> ---


def test_an_operator_with_a_headset_is_rung_in_the_browser(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_lee()
    lin = world.console(LIN)
    refused = lin.get("/desk/token.json")
    assert refused.status_code == 503 and "TWILIO_API_KEY_SID" in refused.get_json()["error"]
    assert lin.post("/desk/headset", {"headset": "on"}).status_code in (302, 303)
    assert "網頁電話尚未啟用" in lin.get("/desk").get_data(as_text=True)

    secret = "an-api-key-secret-of-32-bytes-at-least"
    configured = dataclasses.replace(
        world.settings, twilio_api_key_sid="SK" + "5" * 32, twilio_api_key_secret=secret
    )
    monkeypatch.setitem(world.app.config, "HOTLINE_SETTINGS", configured)
    token = lin.get("/desk/token.json").get_json()
    claims = jwt.decode(token["token"], secret, algorithms=["HS256"])
    header = jwt.get_unverified_header(token["token"])
    with world.sessions() as s:
        lin_id = s.scalar(select(Operator.id).where(Operator.email == LIN))
    assert header["cty"] == "twilio-fpa;v=1"
    assert claims["iss"] == "SK" + "5" * 32 and claims["sub"] == world.settings.twilio_account_sid
    assert claims["grants"]["identity"] == token["identity"] == f"op_{lin_id}"
    assert claims["grants"]["voice"] == {"incoming": {"allow": True}}
    assert claims["exp"] - claims["nbf"] == 3600

    # 林 puts her headset on (and stays away for now); 李 takes 陳大文 on his phone and cold-
    # transfers him to 林: the caller's leg dials her browser, <Dial><Client>.
    world.at(taipei(10, 0))
    assert lin.post("/desk/headset", {"headset": "on"}).status_code in (302, 303)
    page = lin.get("/desk").get_data(as_text=True)
    assert "vendor/twilio-voice-sdk/twilio.min.js" in page and 'id="softphone-answer"' in page
    assert world.web.get("/static/vendor/twilio-voice-sdk/twilio.min.js").status_code == 200
    _sign_on(world, LEE, LEE_PHONE)
    chan = caller(world, CHAN, [press("0")])
    world.drain()
    lee = operator_phone(world, LEE_PHONE, [press("1")])
    world.drain()
    assert chan.hold_on() == "conference"
    desk_call_id = live(world, LEE)["call"]["desk_call_id"]
    lee_console = world.console(LEE)
    assert lee_console.post(
        f"/desk/calls/{desk_call_id}/transfer", {"target": LIN, "mode": "cold"}
    ).status_code in (302, 303)
    world.drain()
    assert chan.send(("redirect", chan.redirect())) == "ended"
    assert chan.result is not None
    dialled = [e.body for e in chan.result.exchanges if "<Client" in e.body]
    assert dialled and f"<Client>op_{lin_id}</Client>" in dialled[0]
    assert lee.send(("ended", "20")) == "ended"

    # The call's recording arrives before any ticket: it waits on the call, and reaches the
    # ticket 李 files while wrapping up.
    media = ThreadingHTTPServer(("127.0.0.1", 0), _Recordings)
    threading.Thread(target=media.serve_forever, daemon=True).start()
    recording = {
        "RecordingSid": "RE" + "8" * 32,
        "RecordingUrl": f"http://127.0.0.1:{media.server_port}/Recordings/RE{'8' * 32}",
        "RecordingStatus": "completed",
        "RecordingDuration": "20",
    }
    assert _post(world, f"/voice/desk/recording?desk={desk_call_id}", recording)[0] == 200
    world.drain()
    assert lee_console.post(
        f"/desk/calls/{desk_call_id}/ticket",
        {"category": "repair", "priority": "P3", "description": "冷氣滴水，已轉給林接線員"},
    ).status_code in (302, 303)
    world.drain()
    media.shutdown()
    with world.sessions() as s:
        audio = s.scalars(
            select(Attachment).where(Attachment.external_id == recording["RecordingSid"])
        ).one()
        assert (
            audio.sha256 and audio.interaction.ticket_id == s.get(DeskCall, desk_call_id).ticket_id
        )

    # 李 steps away, 林 goes available: the next caller's offer rings her browser, not a phone.
    world.at(taipei(10, 2))
    assert lee_console.post("/desk/presence", {"state": "away"}).status_code in (302, 303)
    assert lin.post("/desk/presence", {"state": "available"}).status_code in (302, 303)
    stranger = caller(world, STRANGER, [press("1"), press("0")])
    world.drain()
    assert world.placed_calls()[-1]["To"] == f"client:op_{lin_id}"
    assert stranger.send("hangup") == "ended"
    with world.sessions() as s:
        transfer = s.scalars(select(DeskTransfer)).one()
        assert (transfer.mode, transfer.target, transfer.status) == ("cold", LIN, "completed")
