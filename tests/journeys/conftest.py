"""The journeys' world: one person's story driven only through the front doors.

- a call: Twilio played by the simulator, every webhook signed, every TwiML document validated;
- Twilio's REST API for calls and SMS the app places: `FakeTwilio`, a `twilio.http.HttpClient`
  answering what Twilio answers; an outbound call it created is answered by the simulator;
- mail: SMTP to the real aiosmtpd listener;
- the console: a signed-in Flask client that posts forms with the session's CSRF token;
- the JSON API: a bearer token made by `hotline api-token create`;
- the command line: `hotline ... --format json` through click;
- the workers: the real relay and RQ workers draining the real Redis, with the clock at a moment.

The clock (`intake.clock`) is the world's time: `world.at(moment)` moves it, and everything — the
webhooks, the listener's thread, the relay and the jobs — reads it.
"""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import select

from intake import clock
from intake.models import OutgoingMessage
from tests.voice.conftest import check_twiml
from tests.web.console_helpers import PASSWORD, csrf
from tests.worker.helpers import FakeTwilio, run_jobs
from voice.simulator import CallResult, CallSimulator, FlaskTransport, Step

HOTLINE = "+886227000000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """One person signed in to the console in a browser-like session."""

    def __init__(self, app: Any, email: str) -> None:
        self.client = app.test_client()
        token = csrf(self.client)
        response = self.client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, data: dict[str, Any] | None = None) -> Any:
        """A form post as the browser sends it: the CSRF token from the page it came from."""
        page = "/" if "/tickets/" not in path else path if path.endswith("/new") else None
        token = csrf(self.client, page or path.rsplit("/", 1)[0])
        return self.client.post(path, data={**(data or {}), "csrf_token": token})


class Api:
    def __init__(self, app: Any, token: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.patch(path, json=body, headers=self.headers)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body, headers=self.headers)


class World:
    def __init__(self, settings: Any, sessions: Any, redis_url: str, twilio: FakeTwilio) -> None:
        from web.app import create_app

        self.settings = settings
        self.sessions = sessions
        self.redis = Redis.from_url(redis_url)
        self.twilio = twilio
        self.app = create_app({"TESTING": True}, settings=settings)
        self.web = self.app.test_client()
        self._listener: Any = None
        self._answered_calls: set[str] = set()

    # --- time and workers ---------------------------------------------------------------------

    def at(self, moment: datetime) -> None:
        """The world's clock moves to `moment` (and stays there until moved again)."""
        clock.set_now(moment)

    @property
    def now(self) -> datetime:
        return clock.utcnow()

    def drain(self, moment: datetime | None = None) -> None:
        """The relay and real RQ workers run everything due at `moment` (default: now)."""
        if moment is not None:
            self.at(moment)
        run_jobs(self.redis, self.now)
        self.at(self.now)  # run_jobs restores the clock it found; keep the world's moment

    # --- the phone ----------------------------------------------------------------------------

    def simulator(self, steps: list[Step], **options: Any) -> CallSimulator:
        return CallSimulator(
            FlaskTransport(self.web, self.settings.public_base_url),
            self.settings.webhook_auth_token,
            self.settings.public_base_url,
            steps=steps,
            **options,
        )

    def call(self, steps: list[Step], caller: str, **options: Any) -> CallResult:
        """A resident calls the hotline."""
        result = self.simulator(steps, **options).call(caller, HOTLINE)
        check_twiml(result)
        return result

    def placed_calls(self) -> list[dict[str, Any]]:
        """What the app asked Twilio to dial (POST .../Calls.json), oldest first."""
        return [
            r["data"]
            for r in self.twilio.requests
            if r["method"] == "POST" and r["uri"].endswith("/Calls.json")
        ]

    def answer_next_call(
        self, steps: list[Step], *, outcome: str = "answered", answered_by: str = "human"
    ) -> tuple[dict[str, Any], CallResult]:
        """The phone the app dialled (the oldest not yet answered) rings; Twilio plays its part."""
        for created, placed in zip(self.twilio.calls, self.placed_calls(), strict=False):
            if created["sid"] in self._answered_calls:
                continue
            self._answered_calls.add(created["sid"])
            result = self.simulator(steps).answer(
                created["sid"],
                placed["Url"],
                placed.get("StatusCallback"),
                from_number=placed["From"],
                to_number=placed["To"],
                answered_by=answered_by,
                outcome=outcome,
            )
            check_twiml(result)
            return placed, result
        raise AssertionError("the app placed no call that has not been answered")

    def sms_sent(self, to: str | None = None) -> list[dict[str, Any]]:
        """SMS the app handed to Twilio (POST .../Messages.json)."""
        return [
            r["data"]
            for r in self.twilio.requests
            if r["method"] == "POST"
            and r["uri"].endswith("/Messages.json")
            and (to is None or r["data"]["To"] == to)
        ]

    # --- mail ---------------------------------------------------------------------------------

    def send_mail(
        self,
        *,
        sender: str,
        subject: str,
        body: str,
        headers: dict[str, str] | None = None,
        charset: str = "utf-8",
    ) -> str:
        """A resident's mail server delivers to the SMTP listener; returns its Message-ID."""
        from email.utils import format_datetime, make_msgid

        from mail.smtpd import start_listener

        if self._listener is None:
            self._listener = start_listener(
                self.sessions, self.settings, host="127.0.0.1", port=_free_port()
            )
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.settings.mail_from
        message["Subject"] = subject
        message["Date"] = format_datetime(self.now)
        message["Message-ID"] = make_msgid(domain="resident.example")
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body, charset=charset)
        with smtplib.SMTP("127.0.0.1", self._listener.port, timeout=30) as smtp:
            refused = smtp.send_message(message)
        assert not refused
        return str(message["Message-ID"])

    def mail_to(self, address: str) -> list[dict[str, Any]]:
        """Mail the app sent (or kept in its outbox) to `address`, as `hotline outbox list` shows."""
        rows = self.hotline("outbox", "list", "--format", "json")
        return [r for r in rows if r["channel"] == "email" and r["to"] == address]

    def outgoing(self, **where: Any) -> list[OutgoingMessage]:
        with self.sessions() as s:
            query = select(OutgoingMessage).order_by(OutgoingMessage.id)
            for key, value in where.items():
                query = query.where(getattr(OutgoingMessage, key) == value)
            return list(s.scalars(query))

    # --- people at the console, API clients, the command line ---------------------------------

    def console(self, email: str) -> Console:
        return Console(self.app, email)

    def api(self, name: str, role: str = "operator") -> Api:
        from web.api.cli import commands

        del commands
        result = CliRunner().invoke(
            _hotline(), ["api-token", "create", "--name", name, "--role", role]
        )
        assert result.exit_code == 0, result.output
        token = result.stdout.strip().splitlines()[0]
        return Api(self.app, token)

    def hotline(self, *args: str) -> Any:
        """`hotline ARGS` as an operator types it; the JSON it prints."""
        result = CliRunner().invoke(_hotline(), list(args))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self.redis.close()


def _hotline() -> Any:
    from intake.cli import main

    return main


@pytest.fixture
def world(demo, sessions, redis_url, twilio) -> Iterator[World]:  # type: ignore[no-untyped-def]
    from intake.config import get_settings

    the_world = World(get_settings(), sessions, redis_url, twilio)
    yield the_world
    the_world.close()
