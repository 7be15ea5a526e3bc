"""A supervisor in a real browser: the suggestion of detection declared in one click, the incident
page, the ticket page's group, resolving. Screenshots in test-artifacts/e2e/incident-*.png."""

from __future__ import annotations

import pytest

from intake.service import receive
from intake.sms_refusals import describe
from tests.e2e.conftest import shot
from tests.e2e.test_console_browser import sign_in
from tests.factories import email_contact


@pytest.mark.slow
def test_a_supervisor_declares_the_suggested_incident_and_resolves_it(page, live_server, e2e_env):
    from intake.db import session_factory

    sessions = session_factory(e2e_env.database_url)
    refs = [
        receive(
            sessions,
            email_contact(sender_email=sender, subject=f"B座電梯壞了 {i}", text="電梯停了"),
            e2e_env.config,
        ).ticket_ref
        for i, sender in enumerate(
            ["wang.jianguo@example.cn", "wong.chikeung@example.hk", "wang.jianguo@example.cn"]
        )
    ]
    base = live_server.url
    sign_in(page, base, "supervisor@hotline.localhost")
    page.goto(f"{base}/incidents")
    suggestion = page.locator(".suggestion").first
    assert "B 座有 3 張新的報修工單" in suggestion.inner_text()
    shot(page, "incident-suggestion")
    with page.expect_navigation():
        suggestion.locator("button").click()
    assert "事件已發布。" in page.inner_text("body")
    for ref in refs:
        assert page.locator(f'#incident-tickets tr[data-ref="{ref}"]').count() == 1
    shot(page, "incident-detail")
    page.goto(f"{base}/tickets/{refs[0]}")
    assert "屬於事件" in page.locator("#ticket-incident").inner_text()
    shot(page, "incident-ticket")
    page.goto(f"{base}/")
    assert page.locator("#queue .badge.incident").count() == 3
    shot(page, "incident-queue")
    page.goto(f"{base}/incidents/1")
    with page.expect_navigation():
        page.click("#resolve button")
    assert "事件已解決" in page.inner_text("body")
    assert page.locator("#incident-header [data-field=status]").inner_text() == "已解決"
    shot(page, "incident-resolved")


@pytest.mark.slow
def test_planned_works_notices_show_their_progress_and_failures(page, live_server, e2e_env):
    from sqlalchemy import select

    from intake.db import session_factory
    from intake.models import OutgoingMessage
    from worker.notices import send_incident_notices

    base = live_server.url
    sign_in(page, base, "supervisor@hotline.localhost")
    page.goto(f"{base}/incidents")
    page.check('#declare input[name=building][value="A"]')
    page.select_option("#declare select[name=kind]", "planned")
    page.fill("#declare textarea[name=text_zh_hant]", "A座明日上午九時至十二時停水，進行水箱清洗。")
    page.fill("#declare input[name=until]", "2030-10-17T12:00")
    page.check("#declare input[name=notify]")
    with page.expect_navigation():
        page.click("#declare button[type=submit]")
    assert page.locator("#notices-sending").count() == 1
    incident_id = int(page.url.rsplit("/", 1)[1])
    send_incident_notices(incident_id, "declared")
    sessions = session_factory(e2e_env.database_url)
    with sessions() as session:
        failed = session.scalars(
            select(OutgoingMessage).where(OutgoingMessage.channel == "sms").limit(1)
        ).one()
        # As worker.sms stores Twilio's refusal of a number that is not a phone number.
        failed.status, failed.error = "failed", describe(400, 21211, "invalid 'To' phone number")
        session.commit()
    page.goto(f"{base}/incidents/{incident_id}")
    row = page.locator('#notices tr[data-step="declared"]').inner_text()
    assert "發布通知" in row
    failed_rows = page.locator("#failed-notices").inner_text()
    assert "+886912000001" in failed_rows or "+886912000002" in failed_rows
    # The supervisor reads why in words; Twilio's own stay folded under 技術細節 until asked for.
    assert "電話號碼無效" in failed_rows
    assert "技術細節" in failed_rows and "Twilio" not in failed_rows
    shot(page, "incident-notices")
    page.click("#failed-notices details.tech summary")
    assert "21211" in page.locator("#failed-notices").inner_text()
