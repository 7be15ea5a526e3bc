"""An administrator reads the audit log in a real browser (screenshot in test-artifacts/e2e/)."""

from __future__ import annotations

from tests.e2e.conftest import shot
from tests.e2e.test_console_browser import sign_in


def test_an_admin_reads_who_signed_in_and_who_changed_an_operator(page, live_server):
    base = live_server.url
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "admin@hotline.localhost")
    page.fill("input[name=password]", "not-the-password")
    page.click("form button[type=submit]")
    sign_in(page, base, "admin@hotline.localhost")
    page.goto(f"{base}/admin/operators")
    page.goto(f"{base}/admin/audit/")
    rows = page.locator("#audit tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-action") == "sign_in"
    assert "登入失敗" in rows.nth(1).inner_text()
    shot(page, "audit-log-zh-Hant")
    page.select_option("select[name=action]", "sign_in_failed")
    page.click("#audit-filters button[type=submit]")
    assert page.locator("#audit tbody tr").count() == 1
