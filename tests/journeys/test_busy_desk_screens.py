"""The console looked at in a real Chromium: a busy desk's pages at two screen sizes, two languages.

A mail ticket and a call ticket arrive through the front doors (SMTP, signed webhooks) with the
real workers draining; then every page an operator opens is screenshot at 1366×768 and 1920×1080
in Traditional Chinese and English (test-artifacts/e2e/desk-*.png). A page that scrolls sideways,
a header that takes two lines, a queue cell that wraps in the ref, priority or status columns, or
a raw code on the ticket page fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, LiveServer, chromium_path  # noqa: F401
from tests.web.console_helpers import ADMIN, PASSWORD
from voice.simulator import press, say

pytestmark = pytest.mark.slow
SIZES = [(1366, 768), (1920, 1080)]
RAW = re.compile(
    r"\b(interaction_added|status_changed|callback_scheduled|note_added|canned_\w+|ack_\w+|"
    r"in_progress|waiting_resident|operator_request|zh-Hant|zh-Hans|rule:\w+|kept)\b"
)

WRAPPED = """(cols) => {
  const out = [];
  for (const row of document.querySelectorAll('#queue tbody tr')) {
    for (const c of cols) {
      const cell = row.querySelector('td.' + c);
      if (!cell) continue;
      const lh = parseFloat(getComputedStyle(cell).lineHeight) || 20;
      const range = document.createRange(); range.selectNodeContents(cell);
      const rects = [...range.getClientRects()].map(r => Math.round(r.top));
      if (new Set(rects).size > 1 && cell.scrollHeight > lh * 1.6) out.push(c + ':' + cell.innerText);
    }
  }
  return out;
}"""


HEADER_ROWS = """() => {
  const boxes = [...document.querySelectorAll('header.top > *')]
    .filter(e => e.offsetWidth > 0 && !e.classList.contains('spacer'))
    .map(e => e.getBoundingClientRect());
  const firstLineEnds = Math.min(...boxes.map(b => b.bottom));
  return boxes.some(b => b.top >= firstLineEnds) ? 2 : 1;
}"""


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_the_desk_pages_fit_and_read_as_words(world, demo, browser):
    if not world.settings.database_url.startswith("sqlite"):
        pytest.skip("the pages are looked at once, on SQLite (the default deployment)")
    tz = demo.config.timezone
    world.at(datetime(2030, 10, 15, 10, 0, tzinfo=tz))
    world.send_mail(
        sender="陳大文 <chan.taiman@example.com>",
        subject="廚房水管漏水",
        body="您好，我家廚房水管漏水，請盡快派人維修。",
    )
    world.call([press("1"), say("電梯停在三樓不動")], caller="+886912000002", record_seconds=0)
    world.drain()
    tickets = world.hotline("tickets", "list", "--format", "json")
    mail = next(t["ref"] for t in tickets if t["channel"] == "email")
    call = next(t["ref"] for t in tickets if t["channel"] == "voice")
    server = LiveServer(world.app)
    try:
        for language, locale in (("zh-Hant", "zh-TW"), ("en", "en-GB")):
            for width, height in SIZES:
                ctx = browser.new_context(
                    viewport={"width": width, "height": height}, locale=locale
                )
                page = ctx.new_page()
                _sign_in(page, server.url)
                if language == "en":
                    with page.expect_navigation():
                        page.select_option("#language-form select", "en")
                pages = {
                    "queue": "/",
                    "mail-ticket": f"/tickets/{mail}",
                    "call-ticket": f"/tickets/{call}",
                    "callbacks": "/callbacks",
                    "dashboard": "/dashboard",
                    "admin-routing": "/admin/routing?run=1&text=電梯停了&channel=voice",
                    "admin-hours": "/admin/hours",
                    "admin-phrases": "/admin/templates?name=canned_resolved",
                    "admin-health": "/admin/health",
                }
                for name, path in pages.items():
                    page.goto(server.url + path)
                    page.screenshot(
                        path=str(ARTIFACTS / f"desk-{language}-{width}-{name}.png"), full_page=True
                    )
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                    )
                    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}"
                    if name == "queue":
                        rows = page.evaluate(HEADER_ROWS)
                        assert rows == 1, f"the header takes {rows} lines at {width} in {language}"
                        wrapped = page.evaluate(WRAPPED, ["ref", "priority", "status", "channel"])
                        assert wrapped == [], f"wrapped cells at {width}: {wrapped}"
                    if name.endswith("ticket"):
                        text = page.locator("#timeline").inner_text()
                        assert RAW.findall(text) == [], f"raw codes on {name}: {text}"
                ctx.close()
    finally:
        server.stop()
