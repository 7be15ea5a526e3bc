"""An operator's shift in a real Chromium: sign in, find calls and mail, reply, resolve, dashboard.

Run in Traditional Chinese (the default) and in English (switched with the language menu). A
hostile email is opened in the browser and must run nothing, load nothing, cover nothing.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from intake.db import session_factory
from intake.models import OutgoingMessage, Ticket
from intake.service import receive
from tests.e2e.conftest import shot
from tests.factories import call_contact, email_contact

PASSWORD = "hotline-demo"
LABELS = {
    "zh-Hant": {
        "queue": "工單佇列",
        "filter": "篩選",
        "use": "套用",
        "send": "發送回覆",
        "queued": "回覆已排入發送。",
        "resolve": "標記為已解決",
        "resolved": "已解決",
        "dashboard": "統計總覽",
        "volume": "各渠道每日工單量",
    },
    "en": {
        "queue": "Queue",
        "filter": "Filter",
        "use": "Use phrase",
        "send": "Send reply",
        "queued": "Reply queued for sending.",
        "resolve": "Resolve ticket",
        "resolved": "Resolved",
        "dashboard": "Dashboard",
        "volume": "Volume by channel and day",
    },
}


def sign_in(page: Any, base: str, email: str = "operator@hotline.localhost") -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def queue_refs(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#queue tbody tr[data-ref]", "rows => rows.map(r => r.dataset.ref)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("language", ["zh-Hant", "en"])
def test_an_operators_shift(language, page, live_server, e2e_env):
    labels = LABELS[language]
    sessions = session_factory(e2e_env.database_url)
    mail = receive(
        sessions,
        email_contact(subject="廚房漏水", text="我家廚房漏水，請派人維修。"),
        e2e_env.config,
    ).ticket_ref
    call = receive(
        sessions, call_contact(sender_phone="+886912000002", text="電梯壞了"), e2e_env.config
    ).ticket_ref
    base = live_server.url
    sign_in(page, base)
    if language == "en":
        with page.expect_navigation():
            page.select_option("#language-form select", "en")
    assert page.locator("h1").inner_text() == labels["queue"]
    assert page.locator("html").get_attribute("lang") == language
    shot(page, f"{language}-1-queue")

    page.select_option("#filters select[name=channel]", "voice")
    page.click(f"#filters button:has-text('{labels['filter']}')")
    page.wait_for_url(re.compile(r"channel=voice"))
    assert queue_refs(page) == [call]
    page.select_option("#filters select[name=channel]", "email")
    page.click(f"#filters button:has-text('{labels['filter']}')")
    page.wait_for_url(re.compile(r"channel=email"))
    assert queue_refs(page) == [mail]
    shot(page, f"{language}-2-email-filter")

    page.click(f"#queue a:has-text('{mail}')")
    page.wait_for_url(f"{base}/tickets/{mail}")
    assert "我家廚房漏水" in page.locator("#timeline").inner_text()
    page.select_option("select[name=phrase]", "canned_resolved")
    page.click(f"form.phrase-picker button:has-text('{labels['use']}')")
    page.wait_for_url(re.compile(r"phrase=canned_resolved"))
    draft = page.input_value("textarea[name=body]")
    assert draft.startswith("陳大文您好") and mail in draft  # the resident's language, not the UI's
    page.fill("textarea[name=body]", draft + "\n維修師傅已於今天下午更換水管。")
    shot(page, f"{language}-3-reply-draft")
    page.click(f"#reply button:has-text('{labels['send']}')")
    page.wait_for_load_state()
    assert labels["queued"] in page.locator(".flash").inner_text()

    page.fill("textarea[name=resolution_note]", "已更換水管")
    page.click(f"#resolve button:has-text('{labels['resolve']}')")
    page.wait_for_load_state()
    assert labels["resolved"] in page.locator("#ticket-header").inner_text()
    assert "維修師傅已於今天下午更換水管。" in page.locator("#timeline").inner_text()
    shot(page, f"{language}-4-resolved")

    page.click(f"header nav a:has-text('{labels['dashboard']}')")
    page.wait_for_url(f"{base}/dashboard")
    assert labels["volume"] in page.locator("#chart-volume").inner_text()
    assert page.locator("#chart-volume svg rect").count() >= 2
    assert page.locator("#total").inner_text() == "2"
    shot(page, f"{language}-5-dashboard")

    with sessions() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == mail))
        message = session.scalar(
            select(OutgoingMessage).where(
                OutgoingMessage.ticket_id == ticket.id,
                OutgoingMessage.template == "canned_resolved",
            )
        )
        assert ticket.status == "resolved" and ticket.resolution_note == "已更換水管"
        assert message.body_text.endswith("維修師傅已於今天下午更換水管。")


class _Pixel(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Pixel.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        )

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tracker():
    _Pixel.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pixel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def hostile_html(tracker: str) -> str:
    return f"""<p>您好，附上照片。</p>
<script>window.__pwned = 1; alert('script');</script>
<img src="x" onerror="window.__pwned = 2; alert('onerror')">
<img id="remote" src="{tracker}/pixel.gif" alt="tracking pixel">
<a href="javascript:window.__pwned = 3; alert('link')">click me</a>
<div style="position:fixed;top:0;left:0;width:100vw;height:100vh;background:red;z-index:99999">OVERLAY</div>
<style>header {{ display: none !important; }} body {{ background: red; }}</style>
<svg><animate onbegin="alert('svg')" attributeName="x" dur="1s"/></svg>
<iframe srcdoc="<script>parent.alert('iframe')</script>"></iframe>
<meta http-equiv="refresh" content="0;url={tracker}/moved">
<form action="{tracker}/steal"><input name="password"><button>login</button></form>
<blockquote>On Monday the centre wrote: earlier</blockquote>"""


@pytest.mark.slow
def test_a_hostile_email_runs_nothing_loads_nothing_and_covers_nothing(
    page, live_server, e2e_env, tracker
):
    sessions = session_factory(e2e_env.database_url)
    ref = receive(
        sessions,
        email_contact(subject="照片", text="附上照片", html=hostile_html(tracker)),
        e2e_env.config,
    ).ticket_ref
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/tickets/{ref}")
    page.wait_for_load_state("networkidle")
    shot(page, "hostile-email")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert _Pixel.hits == []
    assert page.url == f"{live_server.url}/tickets/{ref}"
    positioned = page.evaluate(
        """() => [...document.querySelectorAll('.email-html *')]
              .filter(e => ['fixed', 'absolute', 'sticky'].includes(getComputedStyle(e).position)).length"""
    )
    assert positioned == 0
    assert page.locator("header.top").is_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    top = page.evaluate(
        "() => { const e = document.elementFromPoint(700, 20); return e && e.closest('header') !== null; }"
    )
    assert top, "something covers the console's header"
    assert page.locator(".email-html iframe, .email-html form, .email-html svg").count() == 0
    page.click(".email-html a:has-text('click me')")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator(".email-html details.quoted").count() == 1
    assert not page.locator(".email-html details.quoted blockquote").is_visible()

    page.click("button.load-images")
    deadline = time.monotonic() + 20
    while not _Pixel.hits and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert _Pixel.hits == ["/pixel.gif"]
    assert not any("pwned" in line for line in console)


@pytest.mark.slow
def test_a_supervisor_imports_residents_from_csv_with_a_preview(
    page, live_server, e2e_env, tmp_path
):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "name,language,building,unit,phone,email\n周小明,zh-Hant,A,5F-1,0912333444,\n,xx,A,,123,\n",
        encoding="utf-8",
    )
    good = tmp_path / "good.csv"
    good.write_text(
        "name,language,building,unit,phone,email\n周小明,zh-Hant,A,5F-1,0912333444,chow@example.com\n",
        encoding="utf-8",
    )
    page.goto(f"{live_server.url}/login")
    page.fill("input[name=email]", "supervisor@hotline.localhost")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/residents/import")
    page.set_input_files("input[name=file]", str(bad))
    page.click("#import-form button")
    page.wait_for_selector("#preview")
    assert "姓名是空的。" in page.locator('tr[data-line="3"]').inner_text()
    assert page.locator('tr[data-line="2"].has-error').count() == 0
    shot(page, "import-errors")
    page.goto(f"{live_server.url}/residents/import")
    page.set_input_files("input[name=file]", str(good))
    page.click("#import-form button")
    page.wait_for_selector("#preview")
    with page.expect_navigation():
        page.click("button:has-text('匯入 1 行')")
    assert "新增 1" in page.locator("#import-result").inner_text()
    page.goto(f"{live_server.url}/residents?q=周小明")
    assert "+886912333444" in page.locator("#residents").inner_text()


@pytest.mark.slow
def test_the_queue_updates_itself_without_losing_the_operators_place(page, live_server, e2e_env):
    from datetime import timedelta

    from intake.models import Callback, utcnow

    sessions = session_factory(e2e_env.database_url)
    first = receive(sessions, email_contact(subject="漏水", text="廚房漏水"), e2e_env.config)
    sign_in(page, live_server.url)
    assert queue_refs(page) == [first.ticket_ref]
    assert page.locator("#waiting-callbacks b").inner_text() == "0"
    page.fill("#filters input[name=q]", "operator typing")  # the operator's place: unsent input
    receive(sessions, call_contact(sender_phone="+886912000002", text="電梯壞了"), e2e_env.config)
    with sessions() as session:
        session.get(Ticket, first.ticket_id).status = "in_progress"
        session.add(
            Callback(
                ticket_id=first.ticket_id,
                phone="+886912000001",
                purpose="missed_call",
                status="scheduled",
                due_at=utcnow() - timedelta(minutes=1),
            )
        )
        session.commit()
    page.wait_for_selector("#new-tickets:not([hidden])")
    # Not wait_for_function: once it has to poll it evaluates a string, which our CSP forbids.
    expect(page.locator("#waiting-callbacks b")).to_have_text("1")
    expect(page.locator("#queue tr[data-ref] [data-field=status]").first).to_have_text("處理中")
    assert page.locator("#new-tickets [data-new-count]").inner_text() == "1"
    assert page.locator("#missed-calls b").inner_text() == "1"
    assert queue_refs(page) == [first.ticket_ref]  # nothing reordered under the operator
    assert page.input_value("#filters input[name=q]") == "operator typing"
    shot(page, "queue-live-update")


def test_resolving_a_ticket_with_a_promised_callback_warns_first_and_keeps_it(
    page, live_server, e2e_env
):
    """The resolve form lists the callbacks still owed; resolving keeps the one an operator
    promised and says so, in the operator's language."""
    sessions = session_factory(e2e_env.database_url)
    receipt = receive(sessions, call_contact(text="走廊燈不亮"), e2e_env.config)
    with sessions() as s:
        ref = s.get(Ticket, receipt.ticket_id).ref
    base = live_server.url
    sign_in(page, base)
    page.goto(f"{base}/tickets/{ref}")
    page.fill("#callback input[name=phone]", "+886912000001")
    page.click("#callback form:nth-of-type(2) button[type=submit]")
    page.wait_for_selector(".flash")
    warning = page.inner_text("#resolve .flash.warning")
    assert "仍欠住戶的回電" in warning and "客服人員承諾" in warning
    assert not re.search(r"[A-Za-z_]{4,}", warning), warning
    shot(page, "resolve-with-callback-owed")
    page.fill("#resolve textarea[name=resolution_note]", "已更換燈管")
    page.click("#resolve button[type=submit]")
    page.wait_for_selector(".flash.warning")
    flashes = " ".join(page.eval_on_selector_all(".flash", "els => els.map(e => e.innerText)"))
    assert "工單已解決" in flashes and "您承諾的回電仍定於" in flashes
    assert not re.search(r"[A-Za-z_]{4,}", flashes), flashes
    timeline = page.inner_text("#timeline") if page.query_selector("#timeline") else ""
    timeline = timeline or page.inner_text("main")
    words = set(re.findall(r"[A-Za-z_]{4,}", timeline)) - {"example"}
    assert not words - {"operator", "hotline", "localhost", "chan", "taiman"}, words
    shot(page, "resolved-callback-kept")
