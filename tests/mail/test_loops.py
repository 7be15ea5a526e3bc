"""Loop classification of synthetic messages: every non-standard auto-responder form we know."""

from __future__ import annotations

import pytest

from mail.contact import message_to_contact
from mail.loops import is_noreply_address
from mail.quoting import quoted_text_start
from tests.mail.synthetic import offline_settings, utf8_mail


@pytest.fixture
def mail_settings(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    return offline_settings(monkeypatch, tmp_path)


@pytest.mark.parametrize(
    ("headers", "subject", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: 漏水", "auto_reply"),
        ({"Auto-Submitted": "auto-generated"}, "通知", "auto_reply"),
        ({"Auto-Submitted": "no"}, "漏水", "human"),
        ({"X-Autoreply": "yes"}, "Re: 漏水", "auto_reply"),
        ({"X-Autorespond": "vacation"}, "Re: 漏水", "auto_reply"),
        ({"Precedence": "auto_reply"}, "Re: 漏水", "auto_reply"),
        ({"X-Apple-Action": "VACATION"}, "Re: 漏水", "auto_reply"),
        ({}, "Automatic reply: 漏水", "auto_reply"),
        ({}, "自動回覆: 漏水", "auto_reply"),
        ({}, "自动回复：漏水", "auto_reply"),
        ({}, "Out of Office: leak", "auto_reply"),
        ({"Precedence": "bulk"}, "通告", "list"),
        ({"Precedence": "junk"}, "通告", "list"),
        ({"List-Id": "<residents.example.com>"}, "通告", "list"),
        ({"List-Unsubscribe": "<mailto:u@example.com>"}, "優惠", "list"),
        ({}, "漏水", "human"),
    ],
)
def test_header_and_subject_signs(mail_settings, headers, subject, kind) -> None:  # type: ignore[no-untyped-def]
    raw = utf8_mail("內容", subject=subject, headers=headers)
    assert message_to_contact(raw, settings=mail_settings, source="imap").sender_kind == kind


@pytest.mark.parametrize(
    ("address", "noreply"),
    [
        ("noreply@bank.example", True),
        ("no-reply@bank.example", True),
        ("do-not-reply@x.example", True),
        ("MAILER-DAEMON@mx.example", True),
        ("postmaster@mx.example", True),
        ("bounces+abc@list.example", True),
        ("norah@example.com", False),
        ("resident@example.com", False),
    ],
)
def test_noreply_addresses(address: str, noreply: bool) -> None:
    assert is_noreply_address(address) is noreply


def test_noreply_sender_is_classified(mail_settings) -> None:
    raw = utf8_mail("您的帳單", subject="帳單", sender="noreply@bank.example")
    assert message_to_contact(raw, settings=mail_settings, source="imap").sender_kind == "noreply"


def test_text_bounce_without_dsn_from_a_chinese_provider(mail_settings) -> None:
    original = "Message-ID: <HL.hl-000001.1.abc@Hotline.example.com>"
    raw = utf8_mail(
        f"邮件无法发送到您指定的地址中。\n<gone@sina.example>\n\n{original}\n",
        subject="系统退信",
        sender="mailer-daemon@sina.example",
    )
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert contact.sender_kind == "bounce"
    assert contact.meta["bounce"]["recipient"] == "gone@sina.example"
    assert (
        contact.meta["bounce"]["original_message_id"] == "<hl.hl-000001.1.abc@hotline.example.com>"
    )


REPLIES = {
    "qq": "好的，谢谢。\n\n------------------ 原始邮件 ------------------\n发件人: 物业 <a@b.com>\n",
    "outlook-zh": "已收到\n\n发件人: 物业客服 <a@b.com>\n发送时间: 2024年1月2日 10:00\n收件人: 我\n主题: 漏水\n",
    "outlook-tw": "收到\n\n寄件者: 物業客服\n寄件日期: 2024年1月2日\n收件者: 我\n主旨: 漏水\n",
    "outlook-en": "Thanks\n\n-----Original Message-----\nFrom: Desk\nSent: Monday\n",
    "gmail-zh": "谢谢\n\n在 2024年1月2日周二 10:00，物业客服 <a@b.com> 写道：\n> 已受理\n",
    "gmail-tw": "謝謝\n\n於 2024年1月2日 週二 上午10:00 物業客服 <a@b.com> 寫道：\n> 已受理\n",
    "gmail-en-wrapped": "Thanks\n\nOn Tue, Jan 2, 2024 at 10:00 AM Desk <a@b.com>\nwrote:\n> ok\n",
    "quote-only": "Fine.\n\n> earlier text\n> more earlier text\n",
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_quoted_part_is_found_and_the_body_kept(mail_settings, name: str) -> None:
    text = REPLIES[name]
    start = quoted_text_start(text)
    assert start is not None and start > 0
    contact = message_to_contact(
        utf8_mail(text, subject="Re: x"), settings=mail_settings, source="imap"
    )
    assert contact.text.rstrip("\n") == text.rstrip("\n")
    assert contact.meta["quoted_text_start"] == start


@pytest.mark.parametrize(
    "text",
    [
        "我家廚房漏水，請派人維修。",
        "感謝您的來信\n我會準時在家。",
        "From: the third floor\nwater is coming through the ceiling",
        "價格 > 100 元嗎？\n請回覆。",
    ],
)
def test_plain_messages_have_no_quote(text: str) -> None:
    assert quoted_text_start(text) is None


def test_bottom_posted_reply_is_not_folded() -> None:
    text = "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi\nHello, my reply is below the quote."
    assert quoted_text_start(text) is None
