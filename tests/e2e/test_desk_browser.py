"""The desk in a real Chromium: an operator goes available in the header, a resident presses 0,
the screen pop shows who is calling without a reload; a supervisor's wallboard shows the waiting
caller and the operators' states."""

from __future__ import annotations

import re
import threading
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import shot
from tests.e2e.test_console_browser import sign_in
from voice.simulator import CallSimulator, FlaskTransport, press


def _caller_waiting(
    app: Any, settings: Any, number: str
) -> tuple[threading.Thread, threading.Event]:
    """A resident who presses 0 and waits in the queue until `hang_up` is set."""
    queued, hang_up = threading.Event(), threading.Event()

    def wait(_sid: str) -> str | None:
        queued.set()
        hang_up.wait(timeout=60)
        return "hangup"

    simulator = CallSimulator(
        FlaskTransport(app.test_client(), settings.public_base_url),
        settings.webhook_auth_token,
        settings.public_base_url,
        steps=[press("0")],
        on_queue_wait=wait,
    )
    thread = threading.Thread(target=simulator.call, args=(number, "+886227000000"), daemon=True)
    thread.start()
    assert queued.wait(timeout=30)
    return thread, hang_up


def test_the_screen_pop_shows_the_caller_and_the_wallboard_counts_him(page, live_server, e2e_env):  # type: ignore[no-untyped-def]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from intake import clock
    from web import create_app

    clock.set_now(datetime(2030, 10, 14, 10, 0, tzinfo=ZoneInfo("Asia/Taipei")))  # Monday, open
    base = live_server.url
    sign_in(page, base)
    page.goto(f"{base}/desk")
    page.click("#presence-form button[name=state][value=available]")
    page.wait_for_url(f"{base}/desk")
    assert page.inner_text("#desk-state") == "可接聽"
    from intake.db import session_factory
    from intake.models import Operator, OperatorPresence

    with session_factory(e2e_env.database_url)() as s:  # the operator's desk phone number
        op = s.query(Operator).filter_by(email="operator@hotline.localhost").one()
        s.get(OperatorPresence, op.id).device = "+886911000001"
        s.commit()

    app = create_app({"TESTING": True}, settings=e2e_env)
    thread, hang_up = _caller_waiting(app, e2e_env, "+886912000001")
    try:
        page.wait_for_selector("#screen-pop:not([hidden])")
        assert page.inner_text("#pop-name") == "陳大文"
        assert "12F-1" in page.inner_text("#pop-unit")
        assert page.inner_text("#pop-phase") == "來電中"
        shot(page, "desk-screen-pop")

        # Signing out sets the operator away; the supervisor's wallboard shows the caller waiting.
        page.click("form[action='/logout'] button")
        sign_in(page, base, "supervisor@hotline.localhost")
        page.goto(f"{base}/wallboard")
        assert page.inner_text("[data-fig=waiting]") == "1"
        assert page.inner_text("[data-state=available]") == "0"
        shot(page, "wallboard")
    finally:
        hang_up.set()
        thread.join(timeout=30)
    # The caller hung up: the wallboard stops counting him as waiting, without a reload.
    page.wait_for_selector("[data-fig=waiting]:text-is('0')")
    shot(page, "wallboard-after")


def test_the_softphone_controls_load_the_vendored_voice_sdk(page, e2e_env):  # type: ignore[no-untyped-def]
    """With an API key configured, an operator turns the headset on: the page loads Twilio's
    Voice SDK from our own static files, gets a token and shows the answer/hang-up controls."""
    import dataclasses

    from tests.e2e.conftest import LiveServer
    from web import create_app

    settings = dataclasses.replace(
        e2e_env,
        twilio_account_sid="AC" + "a" * 32,
        twilio_api_key_sid="SK" + "5" * 32,
        twilio_api_key_secret="an-api-key-secret-of-32-bytes-at-least",
    )
    server = LiveServer(create_app({"CONSOLE_POLL_SECONDS": 1}, settings=settings))
    tokens: list[int] = []
    page.on(
        "response",
        lambda r: tokens.append(r.status) if r.url.endswith("/desk/token.json") else None,
    )
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/desk")
        assert page.is_visible("#softphone") and not page.is_visible("#softphone-answer")
        page.check("#softphone input[name=headset]")
        page.wait_for_selector("#softphone-answer")
        # Not wait_for_function: its polling evaluates a string, which our CSP forbids.
        expect(page.locator("#softphone-status")).to_have_attribute(
            "data-state", re.compile(".+"), timeout=60_000
        )
        assert page.evaluate("typeof Twilio.Device") == "function"
        assert tokens and tokens[0] == 200
        assert page.inner_text("#softphone-answer") == "接聽"
        assert page.inner_text("#softphone-hangup") == "掛斷"
        assert page.is_disabled("#softphone-answer")  # nothing is ringing
        shot(page, "desk-softphone")
    finally:
        page.context.set_offline(True)  # no Twilio to reach: the SDK's retries end at once
        page.goto("about:blank")
        server.stop()
