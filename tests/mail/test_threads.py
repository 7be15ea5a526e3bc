"""Threading: signed Message-IDs, subject tokens, body markers, bounces of our own mail."""

from __future__ import annotations

import dataclasses

import pytest

from mail.contact import message_to_contact
from mail.threads import (
    find_subject_token,
    make_body_marker,
    make_message_id,
    normalize_message_id,
    parse_id_list,
    verify_message_id,
)
from tests.mail.synthetic import delivery_report, offline_settings, utf8_mail


@pytest.fixture
def mail_settings(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    return offline_settings(monkeypatch, tmp_path)


def test_signed_message_id_round_trip(mail_settings) -> None:
    message_id = make_message_id(mail_settings, "HL-000123", 42)
    assert message_id.startswith("<hl.hl-000123.42.") and message_id.endswith(
        "@hotline.example.com>"
    )
    assert len(message_id) < 78
    assert verify_message_id(mail_settings, message_id) == "HL-000123"
    assert verify_message_id(mail_settings, message_id.upper()) == "HL-000123"
    assert verify_message_id(mail_settings, f"  {message_id}\r\n ") == "HL-000123"


def test_forged_or_foreign_signatures_are_rejected(mail_settings) -> None:
    genuine = make_message_id(mail_settings, "HL-000123", 42)
    other_ticket = genuine.replace("hl-000123", "hl-000124")
    other_key = make_message_id(
        dataclasses.replace(mail_settings, secret_key="other"), "HL-000123", 42
    )
    assert verify_message_id(mail_settings, other_ticket) is None
    assert verify_message_id(mail_settings, other_key) is None
    assert verify_message_id(mail_settings, "<hl.hl-000123.42.0000000000000000@x.com>") is None
    assert verify_message_id(mail_settings, None) is None
    assert verify_message_id(mail_settings, "garbage") is None


@pytest.mark.parametrize(
    "subject",
    [
        "[HL-000123] 漏水",
        "Re: [HL-000123] 漏水",
        "回覆: 【HL-000123】 漏水",
        "回复：［HL－０００１２３］漏水",
        "答复: RE: 轉寄: [hl-123] 漏水",
        "AW: Fwd: 〔 HL 000123 〕",
        "【物業】您的來信已受理 [HL-000123]",
        "Re:[#HL-000123]",
    ],
)
def test_subject_token_is_tolerant(subject: str) -> None:
    assert find_subject_token(subject, "HL") == "HL-000123"


@pytest.mark.parametrize("subject", ["HL-000123 漏水", "[XX-000123]", "[HL-]", "", "[HL-12a]"])
def test_subject_without_a_token(subject: str) -> None:
    assert find_subject_token(subject, "HL") is None


def test_message_id_normalization() -> None:
    assert normalize_message_id(" <ABC@Example.COM> ") == "<abc@example.com>"
    assert normalize_message_id("<a b@c>") == "<ab@c>"
    assert normalize_message_id("bare@id") == "<bare@id>"
    assert normalize_message_id("") is None
    refs = parse_id_list("<A@x> <b@x>\r\n <a@x>", "junk <C@x>", None)
    assert refs == ("<a@x>", "<b@x>", "<c@x>")


def test_reply_with_our_signed_id_is_trusted(mail_settings) -> None:
    ours = make_message_id(mail_settings, "HL-000007", 3)
    raw = utf8_mail(
        "謝謝，已經修好了。",
        subject="Re: 您的來信已受理",
        headers={"In-Reply-To": ours, "References": f"<first@resident.example.com> {ours}"},
    )
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert (contact.ticket_ref, contact.ticket_ref_trusted) == ("HL-000007", True)
    assert contact.meta["thread_by"] == "signed-reference"
    assert normalize_message_id(ours) in contact.references


def test_subject_token_without_signature_is_untrusted(mail_settings) -> None:
    raw = utf8_mail("我也住這棟，同樣漏水。", subject="回覆：【HL-000007】漏水")
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert (contact.ticket_ref, contact.ticket_ref_trusted) == ("HL-000007", False)


def test_forged_signed_id_falls_back_to_the_subject_token(mail_settings) -> None:
    forged = "<hl.hl-000007.3.1234567890abcdef@hotline.example.com>"
    raw = utf8_mail("hi", subject="Re: [HL-000008]", headers={"In-Reply-To": forged})
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert (contact.ticket_ref, contact.ticket_ref_trusted) == ("HL-000008", False)


def test_signed_body_marker_threads_when_headers_were_dropped(mail_settings) -> None:
    marker = make_body_marker(mail_settings, "HL-000009")
    quoted = f"好的\n\n在 2024年1月2日 上午10:00，物業客服 写道：\n> 已受理\n> {marker}\n"
    contact = message_to_contact(
        utf8_mail(quoted, subject="好的"), settings=mail_settings, source="imap"
    )
    assert (contact.ticket_ref, contact.ticket_ref_trusted) == ("HL-000009", True)
    assert contact.meta["thread_by"] == "body-marker"
    forged = quoted.replace(marker, marker[:-10] + "00000000#}")
    contact = message_to_contact(
        utf8_mail(forged, subject="好的"), settings=mail_settings, source="imap"
    )
    assert contact.ticket_ref is None


def test_bounce_of_our_mail_names_the_ticket_and_the_failed_recipient(mail_settings) -> None:
    ours = make_message_id(mail_settings, "HL-000011", 77)
    original = utf8_mail(
        "您的來信已受理",
        subject="【物業】您的來信已受理 [HL-000011]",
        sender="service@hotline.example.com",
        message_id=ours,
    )
    contact = message_to_contact(
        delivery_report(original, recipient="gone@example.net"),
        settings=mail_settings,
        source="smtp",
    )
    assert contact.sender_kind == "bounce"
    assert (contact.ticket_ref, contact.ticket_ref_trusted) == ("HL-000011", True)
    bounce = contact.meta["bounce"]
    assert bounce["failed"] is True
    assert bounce["recipient"] == "gone@example.net"
    assert bounce["original_message_id"] == normalize_message_id(ours)
    assert normalize_message_id(ours) in contact.references


def test_delayed_report_of_our_mail_is_not_a_failure(mail_settings) -> None:
    ours = make_message_id(mail_settings, "HL-000011", 78)
    original = utf8_mail("x", subject="x", sender="service@hotline.example.com", message_id=ours)
    raw = delivery_report(original, action="delayed", status="4.4.1")
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert contact.sender_kind == "bounce"
    assert contact.meta["bounce"]["failed"] is False
    assert contact.meta["mail_class"] == "dsn_delayed"
    assert contact.ticket_ref == "HL-000011"


def test_our_own_mail_coming_back_is_recognised(mail_settings) -> None:
    ours = make_message_id(mail_settings, "HL-000012", 5)
    raw = utf8_mail("x", subject="[HL-000012]", sender="someone@else.example", message_id=ours)
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert contact.sender_kind == "own"
    from_us = utf8_mail("x", subject="hello", sender="物業客服 <service@hotline.example.com>")
    assert message_to_contact(from_us, settings=mail_settings, source="imap").sender_kind == "own"


def test_mail_carrying_our_x_loop_header_is_own(mail_settings) -> None:
    raw = utf8_mail(
        "x",
        subject="hello",
        sender="relay@elsewhere.example",
        headers={"X-Loop": "service@hotline.example.com"},
    )
    assert message_to_contact(raw, settings=mail_settings, source="imap").sender_kind == "own"
