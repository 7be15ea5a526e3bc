"""Parsing: charsets, headers, bodies, attachments, budgets (mail/parse.py, mail/contact.py)."""

from __future__ import annotations

import pytest

from mail.contact import UnparseableMessage, message_to_contact
from tests.mail.synthetic import legacy_mail, offline_settings


@pytest.fixture
def mail_settings(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    return offline_settings(monkeypatch, tmp_path)


def test_gb2312_label_with_gbk_only_characters_decodes_as_gb18030(mail_settings) -> None:
    body = "朱镕基和王喆家的水管漏水，堃字也在：请派人来修。"
    raw = legacy_mail(
        body, charset="gb2312", codec="gbk", subject="镕喆堃漏水", sender_name="王建国"
    )
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert contact.text == body
    assert contact.subject == "镕喆堃漏水"
    assert contact.sender_name == "王建国"
    assert contact.language_hint == "zh-Hans"
    assert contact.channel == "email" and contact.kind == "email"
    assert contact.external_id == "<synthetic-1@resident.example.com>"


def test_empty_bytes_are_unparseable(mail_settings) -> None:
    with pytest.raises(UnparseableMessage) as info:
        message_to_contact(b"   \r\n", settings=mail_settings, source="imap")
    assert "empty" in info.value.reason
