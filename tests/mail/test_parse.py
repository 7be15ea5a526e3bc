"""Parsing: charsets, headers, bodies, attachments, budgets (mail/parse.py, mail/contact.py)."""

from __future__ import annotations

import pytest

from mail.contact import UnparseableMessage, message_to_contact
from mail.parse import parse_message
from tests.mail.synthetic import alternative_mail, legacy_mail, offline_settings


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


CANTONESE = "𠝹開個水喉，啱啱整好又壞咗，係咪條喉嘅問題？恒常都係咁。"


def test_big5_label_with_hkscs_characters(mail_settings) -> None:
    raw = legacy_mail(
        CANTONESE, charset="big5", codec="big5hkscs", subject="水喉壞咗", sender_name="陳大文"
    )
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert contact.text == CANTONESE
    assert contact.subject == "水喉壞咗"
    assert contact.sender_name == "陳大文"
    assert contact.language_hint == "zh-Hant"


def test_big5_hkscs_label_and_cp950_only_euro_in_the_same_body(mail_settings) -> None:
    body = "管理費啱唔啱？".encode("big5hkscs") + " € 1200".encode("cp950")
    raw = legacy_mail("__BODY__", charset="big5-hkscs", codec="big5hkscs", subject="管理費")
    raw = raw.replace(b"X19CT0RZX18=", __import__("base64").b64encode(body))
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert contact.text == "管理費啱唔啱？ € 1200"


@pytest.mark.parametrize(
    "label", ["gb2312", "GB2312", "x-gbk", "cp936", "euc-cn", "gbk", "GB18030"]
)
def test_every_gb_label_decodes_gbk_and_gb18030_text(mail_settings, label: str) -> None:
    body = "电梯坏了，王喆和朱镕基都被困；€ 𠮷"
    raw = legacy_mail(body, charset=label, codec="gb18030", subject="电梯𠮷")
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert contact.text == body
    assert contact.subject == "电梯𠮷"


def test_raw_8bit_subject_is_recovered_with_the_body_charset(mail_settings) -> None:
    raw = legacy_mail(
        "樓上漏水", charset="big5", codec="big5hkscs", subject="漏水咗", raw_subject=True
    )
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert contact.subject == "漏水咗"


def test_wrong_declared_charset_falls_back_to_detection(mail_settings) -> None:
    body = (
        "您好，我住在三座十二樓，廚房的水管一直在漏水，已經好幾天了，請盡快派人來處理，謝謝。" * 3
    )
    raw = legacy_mail(body, charset="x-unknown-label", codec="big5", subject="leak")
    assert message_to_contact(raw, settings=mail_settings, source="smtp").text == body
    raw = legacy_mail(body, charset="utf-8", codec="big5", subject="leak")
    assert message_to_contact(raw, settings=mail_settings, source="smtp").text == body


def test_html_only_mail(mail_settings) -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>大堂的燈<b>壞了</b></p><div>第二行<br>第三行</div>"
        '<a href="https://example.com/photo" onclick="x()">相片</a></body></html>'
    )
    contact = message_to_contact(
        alternative_mail(None, html), settings=mail_settings, source="imap"
    )
    assert contact.text == "大堂的燈壞了\n\n第二行\n第三行\n相片 (https://example.com/photo)"
    assert contact.meta["html_only"] is True
    assert contact.html is not None
    assert (
        "<script" not in contact.html
        and "onclick" not in contact.html
        and "<b>壞了</b>" in contact.html
    )


def test_plain_text_preferred_over_html(mail_settings) -> None:
    raw = alternative_mail("純文字版本", "<p>HTML 版本</p>")
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert contact.text == "純文字版本"
    assert contact.html == "<p>HTML 版本</p>"


def _with_attachments(parts: list[tuple[str | None, str, bytes, str | None]]) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "resident@example.com"
    message["To"] = "complaints@hotline.example.com"
    message["Subject"] = "photos"
    message["Message-ID"] = "<att-1@resident.example.com>"
    message.set_content("see attached")
    message.add_alternative('<p>see <img src="cid:pic1@x"></p>', subtype="html")
    for filename, ctype, data, cid in parts:
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename, cid=cid)
    return message.as_bytes()


def test_attachments_are_stored_content_addressed_with_safe_names(mail_settings) -> None:
    import hashlib

    photo = b"\x89PNG fake image bytes" * 10
    raw = _with_attachments(
        [
            ("../../etc/passwd", "text/plain", b"secret", None),
            ("漏水 照片\u202egnp.exe", "image/png", photo, None),
            ("副本.png", "image/png", photo, None),
            (None, "application/pdf", b"%PDF-1.4", None),
        ]
    )
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    names = [a.filename for a in contact.attachments]
    assert names == ["passwd", "漏水 照片_gnp.exe", "副本.png", "attachment-4.pdf"]
    digest = hashlib.sha256(photo).hexdigest()
    assert contact.attachments[1].sha256 == contact.attachments[2].sha256 == digest
    stored = mail_settings.data_dir / "attachments" / digest[:2] / digest
    assert stored.read_bytes() == photo
    assert contact.attachments[1].size == len(photo)
    assert not list((mail_settings.data_dir / "attachments").rglob(".tmp-*"))


def test_attachments_over_the_limits_are_listed_not_stored(monkeypatch, tmp_path) -> None:
    import dataclasses

    settings = offline_settings(monkeypatch, tmp_path)
    config = dataclasses.replace(
        settings.config, mail=settings.config.mail.model_copy(update={"max_attachment_bytes": 1000})
    )
    settings = dataclasses.replace(settings, config=config)
    raw = _with_attachments(
        [
            ("big.bin", "application/octet-stream", b"x" * 5000, None),
            ("ok.txt", "text/plain", b"ok", None),
        ]
    )
    contact = message_to_contact(raw, settings=settings, source="imap")
    assert [a.filename for a in contact.attachments] == ["ok.txt"]
    assert contact.meta["attachments_skipped"] == [
        {"filename": "big.bin", "size": 5000, "reason": "larger than 1000 bytes"}
    ]


def test_missing_message_id_gets_a_deterministic_synthetic_one(mail_settings) -> None:
    raw = legacy_mail("x", charset="utf-8", codec="utf-8", subject="x", message_id=None)
    first = message_to_contact(raw, settings=mail_settings, source="imap")
    second = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert first.external_id == second.external_id
    assert first.external_id.endswith("@synthetic.hotline>") and len(first.external_id) == 52
    assert first.meta["message_id_synthetic"] is True
    other = message_to_contact(raw + b"\r\nmore", settings=mail_settings, source="imap")
    assert other.external_id != first.external_id


def test_transport_details_are_kept_in_meta(mail_settings) -> None:
    raw = legacy_mail("x", charset="utf-8", codec="utf-8", subject="x")
    contact = message_to_contact(
        raw,
        settings=mail_settings,
        source="imap",
        transport_key="INBOX:17:42",
        envelope_to=["Complaints@Hotline.example.com"],
    )
    assert contact.meta["transport_key"] == "INBOX:17:42"
    assert contact.recipient == "complaints@hotline.example.com"
    assert contact.meta["source"] == "imap"


def test_reply_to_is_noted_but_the_sender_is_from(mail_settings) -> None:
    raw = legacy_mail(
        "x", charset="utf-8", codec="utf-8", subject="x", headers={"Reply-To": "other@example.com"}
    )
    contact = message_to_contact(raw, settings=mail_settings, source="imap")
    assert contact.sender_email == "resident@example.com"
    assert contact.meta["reply_to"] == "other@example.com"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01\x02 binary garbage \xff\xfe",
        b"just a line of text with no headers at all\n",
    ],
)
def test_hopeless_bytes_are_unparseable_with_a_reason(mail_settings, raw: bytes) -> None:
    with pytest.raises(UnparseableMessage) as info:
        message_to_contact(raw, settings=mail_settings, source="smtp")
    assert info.value.reason


def test_pathological_headers_are_cut_to_the_budget(mail_settings) -> None:
    """PRACTICES.md #8: a flood of headers or one enormous header must not stall the parser."""
    import time

    from mail import parse

    flood = b"".join(b"X-Junk-%d: =?utf-8?q?=E6=BC=8F?= (a (b (c)))\r\n" % i for i in range(50_000))
    huge = b"Subject: " + b"=?utf-8?b?5ryP5rC0?= " * 100_000 + b"\r\n"
    refs = b"References: " + b" ".join(b"<r%d@x>" % i for i in range(20_000)) + b"\r\n"
    raw = b"From: a@example.com\r\n" + huge + refs + flood + b"\r\nbody text\r\n"
    started = time.perf_counter()
    contact = message_to_contact(raw, settings=mail_settings, source="smtp")
    assert time.perf_counter() - started < 10
    assert contact.text == "body text"
    assert contact.subject and contact.subject.startswith("漏水漏水")
    assert len(contact.subject) < parse.MAX_HEADER_VALUE
    assert len(contact.references) <= 50
    assert any("header" in note for note in contact.meta["parse_notes"])


def test_no_input_makes_it_raise_anything_but_unparseable(mail_settings) -> None:
    """Every corpus message cut at several points, and with bytes flipped, still parses or is
    rejected with a reason."""
    import random
    from pathlib import Path

    corpus = sorted(Path("/work/shared/corpus/email").rglob("*.eml"))
    rng = random.Random(4)
    for path in rng.sample(corpus, 40):
        data = path.read_bytes()
        for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
            mutated = bytearray(data[:cut])
            for _ in range(5):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                message_to_contact(bytes(mutated), settings=mail_settings, source="smtp")
            except UnparseableMessage as exc:
                assert exc.reason


@pytest.mark.parametrize(
    "html",
    [
        "<" * 1_000_000,
        "<div>" * 60_000 + "深層",
        "<blockquote>" * 60_000 + "深層",
        "<p>段落</p>" * 100_000,
        "<!--" + "x" * 1_000_000,
        '<a href="' + "x" * 1_000_000,
    ],
    ids=["lt", "div", "blockquote", "paragraphs", "comment", "attribute"],
)
def test_hostile_html_stays_within_the_time_budget(mail_settings, html: str) -> None:
    """The stdlib HTMLParser is quadratic on a megabyte of `<`; html5ever on deep nesting."""
    import time

    started = time.perf_counter()
    contact = message_to_contact(
        alternative_mail(None, html), settings=mail_settings, source="smtp"
    )
    assert time.perf_counter() - started < 8
    assert contact.meta["html_only"] is True
    if "深層" in html:
        assert contact.text.endswith("深層")


def test_charset_family_hint_yields_to_text_that_contradicts_it(mail_settings) -> None:
    traditional = legacy_mail(
        "樓上廚房漏水，請儘快處理。", charset="gb18030", codec="gb18030", subject="漏水"
    )
    assert (
        message_to_contact(traditional, settings=mail_settings, source="imap").language_hint is None
    )
    english = legacy_mail("The lift is broken.", charset="gb2312", codec="gbk", subject="lift")
    assert message_to_contact(english, settings=mail_settings, source="imap").language_hint is None
    declared = legacy_mail(
        "x", charset="utf-8", codec="utf-8", subject="x", headers={"Content-Language": "zh-TW"}
    )
    assert (
        message_to_contact(declared, settings=mail_settings, source="imap").language_hint == "zh-TW"
    )


def test_synthetic_id_ignores_trace_headers_and_line_endings(mail_settings) -> None:
    raw = legacy_mail("x", charset="utf-8", codec="utf-8", subject="x", message_id=None)
    via_imap = (
        b"Return-Path: <resident@example.com>\r\nDelivered-To: complaints@hotline.example.com\r\n"
        b"Received: from mx.example.com\r\n\tby imap.example.com; Tue, 2 Jan 2024\r\n" + raw
    )
    via_smtp = b"Received: from client.example.com by us\n" + raw.replace(b"\r\n", b"\n")
    ids = {
        message_to_contact(r, settings=mail_settings, source="imap").external_id
        for r in (raw, via_imap, via_smtp)
    }
    assert len(ids) == 1


def _nested(depth: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n"
    head += b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
        for i in range(1, depth)
    )
    leaf = b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n" % (depth - 1)
    closing = b"".join(b"--b%d--\r\n" % i for i in range(depth - 1, -1, -1))
    return head + opening + leaf + closing


def test_mime_nested_beyond_the_stack_is_read_as_text(mail_settings) -> None:
    """The stdlib parser recurses per level and raises RecursionError near 1,000 levels."""
    assert (
        message_to_contact(_nested(40), settings=mail_settings, source="smtp").text == "deep text"
    )
    contact = message_to_contact(_nested(990), settings=mail_settings, source="smtp")
    assert "deep text" in contact.text
    notes = contact.meta["parse_notes"]
    assert "MIME nested too deeply: the body is read as one text part" in notes
    contact = message_to_contact(_nested(5000), settings=mail_settings, source="smtp")
    assert "MIME parts after the 1000th delimiter line not read" in contact.meta["parse_notes"]


def test_a_flood_of_parts_is_cut_to_the_budget(mail_settings) -> None:
    import time

    head = (
        b"From: a@example.com\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    part = b"--b\r\nContent-Type: application/octet-stream\r\n"
    part += b"Content-Disposition: attachment; filename=f.bin\r\n\r\nxx\r\n"
    started = time.perf_counter()
    contact = message_to_contact(
        head + part * 20_000 + b"--b--\r\n", settings=mail_settings, source="smtp"
    )
    assert time.perf_counter() - started < 5
    assert len(contact.attachments) == 50
    assert contact.meta["attachments_skipped"][0]["reason"] == "too many attachments"


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("GB2312", "gb18030"),
        ("x-gbk", "gb18030"),
        ("CP936", "gb18030"),
        ("euc-cn", "gb18030"),
        ('"gbk"', "gb18030"),
        ("Big5", "big5hkscs"),
        ("x-big5", "big5hkscs"),
        ("cp950", "big5hkscs"),
        ("big5-hkscs", "big5hkscs"),
        ("windows-874", "cp874"),
        ("ks_c_5601-1987", "cp949"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("iso-8859-1", "cp1252"),
        ("utf8", "utf-8"),
        ("x-invalid", None),
        ("iso-2022-cn", None),
        ("", None),
    ],
)
def test_charset_labels(label: str, codec: str | None) -> None:
    from mail.charsets import codec_for

    assert codec_for(label) == codec


def test_decoding_never_raises_whatever_the_label() -> None:
    import random

    from mail.charsets import decode_bytes

    rng = random.Random(7)
    labels = ["gb2312", "big5", "utf-8", "x-unknown", "iso-2022-jp", "utf-7", "us-ascii", None]
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        text, codec = decode_bytes(data, rng.choice(labels))
        assert isinstance(text, str) and codec


def test_double_encoded_big5_is_repaired_but_latin_text_is_left_alone() -> None:
    from mail.charsets import repair_double_encoding

    mojibake = "大補泡麵專賣 繁體中文".encode("big5").decode("latin-1")
    assert repair_double_encoding(mojibake) == "大補泡麵專賣 繁體中文"
    simplified = "电梯坏了请尽快修理谢谢".encode("gbk").decode("latin-1")
    assert repair_double_encoding(simplified) == "电梯坏了请尽快修理谢谢"
    utf8 = "電梯壞了請儘快修理".encode().decode("latin-1")
    assert repair_double_encoding(utf8) == "電梯壞了請儘快修理"
    for text in ("Café déjà vu", "Ærøskøbing Ålborg", "naïve façade ÀÉÎÕÜ"):
        assert repair_double_encoding(text) == text


def test_arbitrary_bytes_never_raise_anything_but_unparseable(monkeypatch, tmp_path) -> None:
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    settings = offline_settings(monkeypatch, tmp_path)
    header_lines = st.sampled_from(
        [
            b"From: =?gb2312?B?zfXX0w==?= <a@b.c>\r\n",
            b"Subject: =?big5?Q?=A4=A4?= \xa4\xa4\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n",
            b"Content-Type: text/html; charset=x-gbk\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Message-ID: <\xff@x>\r\n",
            b"References: <a@b> <c@d\r\n",
        ]
    )

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(header_lines, max_size=6), st.binary(max_size=600))
    def check(headers: list[bytes], body: bytes) -> None:
        raw = b"".join(headers) + b"\r\n" + body.replace(b"--", b"\r\n--x\r\n")
        try:
            contact = message_to_contact(raw, settings=settings, source="smtp")
        except UnparseableMessage as exc:
            assert exc.reason
        else:
            assert "\x00" not in contact.text and contact.external_id

    check()


def test_a_message_parses_each_header_field_once_and_shares_none_with_another() -> None:
    raw = alternative_mail("水管漏水", "<p>水管漏水</p>")
    first, second = parse_message(raw).msg, parse_message(raw).msg
    assert first.get("Content-Type") is first.get("Content-Type")
    assert first.get("Content-Type") == second.get("Content-Type")
    assert first.get("Content-Type") is not second.get("Content-Type")
