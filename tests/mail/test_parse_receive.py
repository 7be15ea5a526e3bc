"""End to end through the core: raw mail → message_to_contact → intake.service.receive, on
SQLite and PostgreSQL (the `demo` world)."""

from __future__ import annotations

from sqlalchemy import func, select

from intake.models import Event, Interaction, Outbox, Ticket
from intake.service import receive
from mail.contact import message_to_contact
from mail.threads import make_message_id
from tests.mail.synthetic import delivery_report, legacy_mail, utf8_mail

GBK_BODY = "我家厨房的水管漏水，已经三天了，请尽快派维修工来处理。朱镕基路8号8F-5。"


def _ingest(settings, sessions, raw: bytes, source: str = "imap"):  # type: ignore[no-untyped-def]
    contact = message_to_contact(raw, settings=settings, source=source)
    return contact, receive(sessions, contact, settings.config)


def _acks(sessions) -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Outbox).where(Outbox.job == "acknowledge"))


def _first_mail(demo, sessions):  # type: ignore[no-untyped-def]
    raw = legacy_mail(
        GBK_BODY,
        charset="gb2312",
        codec="gbk",
        subject="厨房漏水（镕）",
        sender="wang.jianguo@example.cn",
        sender_name="王建国",
        message_id="<first-gbk@example.cn>",
    )
    return raw, _ingest(demo, sessions, raw)[1]


def test_a_residents_gbk_mail_becomes_one_simplified_chinese_ticket(demo, sessions) -> None:
    raw, receipt = _first_mail(demo, sessions)
    assert receipt.created_ticket
    again = _ingest(demo, sessions, raw, source="smtp")[1]
    assert again.duplicate and again.ticket_id == receipt.ticket_id
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert ticket.language == "zh-Hans"
        assert ticket.resident.name == "王建国"
        [interaction] = ticket.interactions
        assert interaction.body_text == GBK_BODY
        assert interaction.subject == "厨房漏水（镕）"
        assert interaction.meta["mail_class"] == "human"
    assert _acks(sessions) == 1


def test_a_reply_with_our_signed_id_lands_on_the_same_ticket(demo, sessions) -> None:
    _, receipt = _first_mail(demo, sessions)
    ours = make_message_id(demo, receipt.ticket_ref, 1)
    reply = utf8_mail(
        "谢谢，周六上午在家。\n\n在 2024年1月2日，物业客服 写道：\n> 已受理\n",
        subject="回复：您的来信已受理",
        sender="wang.jianguo@example.cn",
        message_id="<reply-1@example.cn>",
        headers={"In-Reply-To": ours, "References": f"<first-gbk@example.cn> {ours}"},
    )
    contact, second = _ingest(demo, sessions, reply)
    assert contact.ticket_ref_trusted
    assert second.ticket_id == receipt.ticket_id and not second.created_ticket
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1
        assert len(s.get(Ticket, receipt.ticket_id).interactions) == 2
    assert _acks(sessions) == 1


def test_an_auto_reply_is_stored_on_the_ticket_and_not_acknowledged(demo, sessions) -> None:
    _, receipt = _first_mail(demo, sessions)
    ours = make_message_id(demo, receipt.ticket_ref, 1)
    auto = utf8_mail(
        "我正在休假，1月10日回来。",
        subject="自动回复：您的来信已受理",
        sender="wang.jianguo@example.cn",
        message_id="<ooo-1@example.cn>",
        headers={"In-Reply-To": ours, "Auto-Submitted": "auto-replied"},
    )
    contact, stored = _ingest(demo, sessions, auto)
    assert contact.sender_kind == "auto_reply"
    assert stored.ticket_id == receipt.ticket_id
    with sessions() as s:
        interaction = s.get(Interaction, stored.interaction_id)
        assert interaction.meta["sender_kind"] == "auto_reply"
    assert _acks(sessions) == 1


def test_a_bounce_of_our_acknowledgement_lands_on_the_ticket(demo, sessions) -> None:
    _, receipt = _first_mail(demo, sessions)
    ours = make_message_id(demo, receipt.ticket_ref, 2)
    ack = utf8_mail(
        "已受理", subject=f"[{receipt.ticket_ref}]", sender=demo.mail_from, message_id=ours
    )
    contact, stored = _ingest(
        demo, sessions, delivery_report(ack, recipient="wang.jianguo@example.cn")
    )
    assert contact.sender_kind == "bounce"
    assert stored.ticket_id == receipt.ticket_id
    with sessions() as s:
        meta = s.get(Interaction, stored.interaction_id).meta
        assert meta["bounce"]["recipient"] == "wang.jianguo@example.cn"
        assert meta["bounce"]["failed"] is True
    assert _acks(sessions) == 1


def test_a_stranger_quoting_a_ticket_token_gets_a_new_linked_ticket(demo, sessions) -> None:
    _, receipt = _first_mail(demo, sessions)
    nosy = utf8_mail(
        "我也想知道这个维修进度。",
        subject=f"回复：【{receipt.ticket_ref}】厨房漏水",
        sender="stranger@elsewhere.example",
        message_id="<nosy-1@elsewhere.example>",
    )
    contact, other = _ingest(demo, sessions, nosy)
    assert contact.ticket_ref == receipt.ticket_ref and not contact.ticket_ref_trusted
    assert other.created_ticket and other.ticket_id != receipt.ticket_id
    assert other.linked_to == receipt.ticket_ref
    with sessions() as s:
        assert len(s.get(Ticket, receipt.ticket_id).interactions) == 1
        kinds = s.scalars(select(Event.kind).where(Event.ticket_id == other.ticket_id)).all()
        assert "linked" in kinds


def test_a_hong_kong_residents_big5_hkscs_mail_is_traditional_chinese(demo, sessions) -> None:
    body = "部𨋢壞咗，啱啱有人困咗喺入面！"
    raw = legacy_mail(
        body,
        charset="big5",
        codec="big5hkscs",
        subject="𨋢壞咗",
        sender="wong.chikeung@example.hk",
        sender_name="黃志強",
        message_id="<hk-1@example.hk>",
    )
    _, receipt = _ingest(demo, sessions, raw)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert ticket.language == "zh-Hant"
        assert ticket.resident.name == "黃志強"
        assert ticket.interactions[0].body_text == body


def test_hostile_bytes_still_file_a_ticket_the_database_accepts(demo, sessions) -> None:
    """NUL in the body, undecodable 8-bit bytes in ids and addresses, values longer than the
    columns: PostgreSQL refuses NUL and over-long VARCHARs, so the parser must not pass them on."""
    long_id = b"<" + b"x" * 400 + b"@example.com>"
    raw = (
        b"From: " + "名".encode() * 300 + b"\xff\xfe <>\r\n"
        b"To: \xb2\xe2\xca\xd4@example.com\r\n"
        b"Subject: " + b"\xa4\xa4" * 400 + b"\r\n"
        b"Message-ID: " + long_id + b"\r\n"
        b"References: <ok@x> <\xff\xfe@x>\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nleak\x00ing \xff pipe\r\n"
        b"--b\r\nContent-Type: image/"
        + b"x" * 200
        + b"\r\nContent-ID: <\xff"
        + b"c" * 400
        + b">\r\n"
        b"Content-Disposition: attachment; filename=p.png\r\n\r\nPNG\r\n--b--\r\n"
    )
    contact, receipt = _ingest(demo, sessions, raw, source="smtp")
    assert "\x00" not in contact.text and "leaking" in contact.text
    assert contact.external_id.endswith("@synthetic.hotline>")
    assert contact.references == ("<ok@x>",)
    with sessions() as s:
        interaction = s.get(Interaction, receipt.interaction_id)
        assert interaction.subject and len(interaction.subject) <= 500
        assert len(interaction.attachments) == 1
