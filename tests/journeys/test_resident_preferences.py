"""Journey (issues 17 and 13): a resident asks at the desk to hear only about emergencies, in English.

黃志強 of block B tells the operator he reads English and does not want planned-works notices. The
operator changes that on his page in the console (a form post with its CSRF token); the change is
in the audit log, said in words. Planned water works in B are then told to his neighbour but not to
him; a burst pipe the same week reaches him anyway, in English. The moment is fixed (a Wednesday
morning in Taipei).
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from intake.models import ContactPoint, Resident
from mail.outgoing import build_email
from tests.journeys.conftest import World
from tests.web.console_helpers import ADMIN, OPERATOR

TAIPEI = ZoneInfo("Asia/Taipei")
WANG_PHONE = "+8613800138000"  # B, zh-Hans, keeps every notice
WONG_PHONE, WONG_MAIL = "+85291234567", "wong.chikeung@example.hk"  # B, zh-Hant


def taipei(day: int, hour: int) -> datetime:
    return datetime(2030, 10, day, hour, 0, tzinfo=TAIPEI)


def declare(world: World, kind: str, zh: str, en: str) -> dict:
    return world.hotline(
        "incidents",
        "declare",
        "--kind",
        kind,
        "--buildings",
        "B",
        "--category",
        "repair",
        "--text-zh-hant",
        zh,
        "--text-zh-hans",
        zh,
        "--text-en",
        en,
        "--notify",
        "--format",
        "json",
    )


def test_a_resident_who_declines_planned_notices_still_hears_of_an_emergency(
    world: World,
) -> None:
    world.at(taipei(16, 10))
    with world.sessions() as session:
        wong = session.scalar(
            select(Resident)
            .join(ContactPoint, ContactPoint.resident_id == Resident.id)
            .where(ContactPoint.value == WONG_PHONE)
        )
        assert wong is not None and wong.language == "zh-Hant" and not wong.notices_opt_out
    operator = world.console(OPERATOR)
    page = operator.get(f"/residents/{wong.id}").get_data(as_text=True)
    assert "建築通知" in page and "所有通知" in page

    saved = operator.post(
        f"/residents/{wong.id}/preferences",
        {"language": "en", "spoken_language": "yue", "notices": "urgent_only"},
    )
    assert saved.status_code == 302
    page = operator.get(f"/residents/{wong.id}").get_data(as_text=True)
    assert "已儲存" in page
    assert re.search(r'<option value="en" selected>', page)
    assert re.search(r'<option value="yue" selected>粵語', page)
    assert re.search(r'<option value="urgent_only" selected>', page)

    # A choice that is not on the list is refused with a clear answer, and nothing changes.
    refused = operator.post(f"/residents/{wong.id}/preferences", {"language": "klingon"})
    assert refused.status_code == 400

    # The administrator sees who changed what, in words.
    audit = world.console(ADMIN).get("/admin/audit/").get_data(as_text=True)
    assert "住戶偏好已變更" in audit and OPERATOR in audit
    assert "僅緊急事故" in audit and "notices_opt_out" not in audit

    # Planned water works in B: the neighbour is told, he is not.
    declare(world, "planned", "B座明日停水維修。", "Water to Block B is off for works tomorrow.")
    world.drain()
    assert len(world.sms_sent(WANG_PHONE)) == 1
    assert world.sms_sent(WONG_PHONE) == [] and world.mail_to(WONG_MAIL) == []

    # Two days later a pipe bursts: an incident reaches him anyway, in English.
    world.at(taipei(18, 11))
    declare(world, "incident", "B座水管爆裂，正在搶修。", "A pipe burst in Block B; under repair.")
    world.drain()
    [sms] = world.sms_sent(WONG_PHONE)
    assert "A pipe burst in Block B" in sms["Body"]
    [mail] = world.mail_to(WONG_MAIL)
    assert "A pipe burst in Block B" in mail["body_text"]


def test_a_resident_stops_planned_notices_from_the_email_itself(world: World) -> None:
    """The same choice made by 黃志強 himself: the planned-works email carries a stop link and a
    one-click List-Unsubscribe (RFC 8058) that his mail program shows as its own button."""
    world.at(taipei(16, 10))
    declare(world, "planned", "B座明日停水維修。", "Water to Block B is off for works tomorrow.")
    world.drain()
    [notice] = world.outgoing(to=WONG_MAIL)
    assert notice.status in ("kept", "sent")
    link = (notice.headers or {})["List-Unsubscribe"].strip("<>")
    assert (notice.headers or {})["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"請開啟此連結：{link}" in (notice.body_text or "")
    with world.sessions() as session:  # the message as the relay gets it
        built = build_email(session, notice, None, world.settings)
    assert built["List-Unsubscribe"] == f"<{link}>"
    assert built["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = link.removeprefix(world.settings.public_base_url.rstrip("/"))
    assert path.startswith("/notices/stop/")

    # Opening the link (as a mail scanner would) only asks; nothing changes yet.
    asked = world.web.get(path)
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "黃志強您好" in page and "不再接收工程預告" in page
    with world.sessions() as session:
        wong = session.scalar(select(Resident).where(Resident.name == "黃志強"))
        assert wong is not None and not wong.notices_opt_out

    # His mail program's unsubscribe button: one POST, no session, no CSRF token.
    stopped = world.web.post(path, data={"List-Unsubscribe": "One-Click"})
    assert stopped.status_code == 200 and "已為您停止寄送" in stopped.get_data(as_text=True)
    assert world.web.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with world.sessions() as session:
        wong = session.scalar(select(Resident).where(Resident.name == "黃志強"))
        assert wong is not None and wong.notices_opt_out
    audit = world.console(ADMIN).get("/admin/audit/").get_data(as_text=True)
    assert audit.count("由住戶經通知郵件中的連結變更") == 1 and "僅緊急事故" in audit

    # A link that was not made by us (another resident's number, the same signature) is refused.
    forged = path.replace(f"stop-notices.{wong.id}.", f"stop-notices.{wong.id + 1}.")
    assert forged != path
    refused = world.web.post(forged, data={"List-Unsubscribe": "One-Click"})
    assert refused.status_code == 404 and "此連結無效" in refused.get_data(as_text=True)

    # The next planned works do not reach him; an incident does.
    world.at(taipei(17, 10))
    declare(world, "planned", "B座後日停電檢修。", "Power to Block B is off for checks.")
    world.drain()
    assert len(world.mail_to(WONG_MAIL)) == 1
    world.at(taipei(18, 11))
    declare(world, "incident", "B座水管爆裂，正在搶修。", "A pipe burst in Block B; under repair.")
    world.drain()
    assert len(world.mail_to(WONG_MAIL)) == 2
    assert "List-Unsubscribe" not in (world.outgoing(to=WONG_MAIL)[-1].headers or {})
