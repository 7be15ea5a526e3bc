"""The voice test world: the real Flask app, Twilio played by the simulator, every TwiML checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from intake import clock as intake_clock
from tests.voice.twiml_validator import validate
from voice.simulator import CallResult, CallSimulator, FlaskTransport, Step

OPEN = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 10:00 in Taipei
CLOSED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # Sunday 20:00 in Taipei
HOTLINE = "+886227000000"


class Clock:
    """The test world's time, set through the one clock (`intake.clock`) everything reads."""

    @property
    def now(self) -> datetime:
        return intake_clock.utcnow()

    @now.setter
    def now(self, moment: datetime) -> None:
        intake_clock.set_now(moment)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    with intake_clock.frozen(OPEN):
        yield Clock()


@pytest.fixture(scope="session")
def _demo_password_hash() -> str:
    from intake.auth import hash_password
    from intake.demo import DEMO_PASSWORD

    return hash_password(DEMO_PASSWORD)


@pytest.fixture(autouse=True)
def _hash_demo_passwords_once(monkeypatch, _demo_password_hash):  # type: ignore[no-untyped-def]
    """The demo operators' argon2 hash is computed once per session: these tests never log in."""
    monkeypatch.setattr("intake.demo.hash_password", lambda password: _demo_password_hash)


@pytest.fixture
def app(demo, clock):  # type: ignore[no-untyped-def]
    from web.app import create_app

    application = create_app({"TESTING": True}, settings=demo)
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def check_twiml(result: CallResult) -> None:
    """Every document Twilio received in this call is valid TwiML served as text/xml."""
    assert not result.errors, result.errors
    for exchange in result.exchanges:
        assert exchange.status == 200, (exchange.url, exchange.status, exchange.body)
        validate(exchange.body, exchange.content_type)


@pytest.fixture
def phone(client, demo) -> Callable[..., CallResult]:  # type: ignore[no-untyped-def]
    """Place a simulated inbound call: phone(steps, caller=..., **simulator options)."""

    def place(
        steps: list[Step],
        caller: str = "+886912000001",
        call_sid: str | None = None,
        **options: Any,
    ) -> CallResult:
        simulator = CallSimulator(
            FlaskTransport(client, demo.public_base_url),
            demo.webhook_auth_token,
            demo.public_base_url,
            steps=steps,
            **options,
        )
        result = simulator.call(caller, HOTLINE, call_sid=call_sid)
        check_twiml(result)
        return result

    return place


@pytest.fixture
def simulator_for(client, demo) -> Callable[..., CallSimulator]:  # type: ignore[no-untyped-def]
    def make(steps: list[Step], **options: Any) -> CallSimulator:
        return CallSimulator(
            FlaskTransport(client, demo.public_base_url),
            demo.webhook_auth_token,
            demo.public_base_url,
            steps=steps,
            **options,
        )

    return make


@pytest.fixture(autouse=True)
def _no_swallowed_errors(caplog):  # type: ignore[no-untyped-def]
    """The webhooks apologise to the caller on an unexpected error; a test must still see it."""
    yield
    failures = [r for r in caplog.records if r.name == "voice.webhooks" and r.levelname == "ERROR"]
    assert not failures, failures[0].getMessage() + "\n" + (failures[0].exc_text or "")
