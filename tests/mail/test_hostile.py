"""Hostile input for the mail parser: whatever the headers, bodies and charset labels,
`message_to_contact` returns a contact or raises `UnparseableMessage`, and quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from intake.contact import InboundContact
from mail.contact import message_to_contact
from mail.parse import UnparseableMessage
from tests.mail.synthetic import offline_settings

PER_MESSAGE_SECONDS = 5.0
PUNYCODE = (
    b"From: Chan <chan.taiman@example.com>\r\nSubject: leak\r\n"
    b"Content-Type: text/plain; charset=punycode\r\n\r\nHello, my kitchen leaks.\r\n"
)

_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Sender",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Content-Language",
        "Authentication-Results",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "Return-Path",
        "X-Loop",
        "X-Autoreply",
        "MIME-Version",
    ]
)
_CHARSETS = st.sampled_from(
    [
        "utf-8",
        "gb2312",
        "big5",
        "punycode",
        "idna",
        "base64",
        "rot13",
        "utf-7",
        "utf-16",
        "unicode_escape",
        "x-unknown",
        "",
        '"',
        "iso-2022-jp",
        "hz-gb-2312",
        "ks_c_5601-1987",
    ]
)
_PIECES = st.sampled_from(
    [
        '"a@victim.example, b@victim.example" (Your refund: http://phish.example)',
        "=?utf-8?b?5bu65Zu9?=",
        "=?punycode?q?abc?=",
        "=?x-bogus?B?////?=",
        "<hl.hl-000001.1.0123456789abcdef@hotline.localhost>",
        "multipart/mixed; boundary=b",
        "multipart/report; report-type=delivery-status; boundary=b",
        "text/plain; charset=",
        "message/rfc822",
        "base64",
        "quoted-printable",
        "\r\n\t",
        "\r\n",
        "--b\r\n",
        "--b--\r\n",
        "mx.hotline.localhost; dmarc=fail",
        "(((((",
        "@@@",
        "\x00",
        "\udcff",
    ]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=40), _CHARSETS), min_size=0, max_size=6).map(
    "".join
)


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(_NAMES, _TEXT), min_size=0, max_size=8))
    charset = draw(_CHARSETS)
    lines = [f"{name}: {value}" for name, value in headers]
    if draw(st.booleans()):
        lines.append(f"Content-Type: text/plain; charset={charset}")
    body = draw(
        st.one_of(
            st.sampled_from(["Hello, my kitchen leaks.\r\n", "我家廚房漏水。\r\n", "a-b-c"]),
            _TEXT,
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        )
    )
    text = "\r\n".join(lines) + "\r\n\r\n" + body
    codec = draw(st.sampled_from(["utf-8", "gb18030"]))
    return text.encode(codec, "surrogateescape")


@pytest.fixture
def offline(monkeypatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    return offline_settings(monkeypatch, tmp_path)


@hsettings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.one_of(hostile_mail(), st.binary(max_size=300)))
@example(raw=PUNYCODE)
def test_the_parser_returns_a_contact_or_refuses_cleanly(offline, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    try:
        contact = message_to_contact(raw, settings=offline, source="smtp")
    except UnparseableMessage as exc:
        # refusing bytes that are not mail is fine; our own code failing on them is a bug
        assert exc.reason and not exc.reason.startswith("internal error"), exc.reason
    else:
        assert isinstance(contact, InboundContact)
        assert contact.sender_email is None or contact.sender_email.count("@") == 1
    assert time.monotonic() - started < PER_MESSAGE_SECONDS
