"""A walk-in entered in a real Chromium: find the resident by unit, file, land on the ticket."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import shot
from tests.e2e.test_console_browser import sign_in

WORDS = {
    "zh-Hant": {"new": "新增工單", "choose": "選擇", "file": "建立工單", "walk_in": "來訪"},
    "en": {
        "new": "New ticket",
        "choose": "Choose",
        "file": "File the ticket",
        "walk_in": "Walk-in",
    },
}


@pytest.mark.parametrize("language", ["zh-Hant", "en"])
def test_an_operator_files_a_walk_in_from_the_console(
    language: str, page: Any, live_server: Any
) -> None:
    words = WORDS[language]
    base = live_server.url
    sign_in(page, base)
    if language == "en":
        with page.expect_navigation():
            page.select_option("#language-form select", "en")
    page.click(f"header nav a:has-text('{words['new']}')")
    page.wait_for_url(f"{base}/tickets/new")
    page.fill("#resident-search input[name=q]", "3F-2")
    page.click("#resident-search button[type=submit]")
    page.wait_for_url(re.compile(r"q=3F-2"))
    shot(page, f"{language}-new-ticket-1-search")
    page.click(f"#resident-matches a:has-text('{words['choose']}')")
    page.wait_for_url(re.compile(r"resident=\d+"))
    assert "李小梅" in page.locator("#chosen-resident").inner_text()
    page.fill("textarea[name=description]", "浴室天花板漏水，請派人來看看。")
    shot(page, f"{language}-new-ticket-2-form")
    page.click(f"#new-ticket button:has-text('{words['file']}')")
    page.wait_for_url(re.compile(r"/tickets/HL-\d{6}$"))
    shot(page, f"{language}-new-ticket-3-filed")
    assert words["walk_in"] in page.content()
    assert "浴室天花板漏水" in page.locator("#timeline").inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], "nothing runs off the side"
