"""Journey (issue 17): the lift in block B stops; one incident, not fifty tickets.

A supervisor declares it from the command line with --notify: every household of B is told by SMS
and email in their own language (once, even when the notice job runs again); a resident of B who
calls hears the announcement first and hangs up (no ticket); one who writes gets an acknowledgement
naming the incident and its expected end, linked and not routed; resolving it resolves the linked
ticket and sends the all-clear. The moment is fixed (a Wednesday afternoon in Taipei).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from intake.models import Outbox
from intake.tickets import job_row
from tests.journeys.conftest import World
from tests.web.console_helpers import SUPERVISOR
from voice.simulator import HANGUP, press

TAIPEI = ZoneInfo("Asia/Taipei")
WANG_PHONE, WANG_MAIL = "+8613800138000", "wang.jianguo@example.cn"  # B, zh-Hans
WONG_PHONE, WONG_MAIL = "+85291234567", "wong.chikeung@example.hk"  # B, zh-Hant
CHAN_PHONE, CHAN_MAIL = "+886912000001", "chan.taiman@example.com"  # A, zh-Hant


def taipei(hour: int, minute: int) -> datetime:
    return datetime(2030, 10, 16, hour, minute, tzinfo=TAIPEI)


def declare(world: World) -> dict:
    return world.hotline(
        "incidents",
        "declare",
        "--buildings",
        "B",
        "--category",
        "repair",
        "--text-zh-hant",
        "B座升降機故障，工程部正在搶修，預計下午六時前恢復。",
        "--text-zh-hans",
        "B座电梯故障，工程部正在抢修，预计下午六时前恢复。",
        "--text-en",
        "The lift in Block B is out of order; engineers are repairing it.",
        "--keywords",
        "升降機,電梯,电梯,lift,elevator",
        "--until",
        "2030-10-16T18:00",
        "--notify",
        "--format",
        "json",
    )


def notices_to(world: World, address: str, template: str) -> list:
    return [m for m in world.outgoing(to=address) if (m.template or "").startswith(template)]


def test_a_lift_outage_is_one_incident_told_to_every_household_and_cleared(
    world: World,
) -> None:
    world.at(taipei(14, 0))
    incident = declare(world)
    assert incident["status"] == "active" and incident["buildings"] == ["B"]
    world.drain()

    # Every household of B is told, each in their own language, by SMS and by email.
    [wang_sms] = world.sms_sent(WANG_PHONE)
    assert "电梯故障" in wang_sms["Body"]
    [wong_sms] = world.sms_sent(WONG_PHONE)
    assert "升降機故障" in wong_sms["Body"] and "2030-10-16 18:00" in wong_sms["Body"]
    [wang_mail] = world.mail_to(WANG_MAIL)
    assert "紧急通知" in wang_mail["subject"] and "电梯故障" in wang_mail["body_text"]
    [wong_mail] = world.mail_to(WONG_MAIL)
    assert "緊急通知" in wong_mail["subject"]
    # Block A hears nothing.
    assert world.sms_sent(CHAN_PHONE) == [] and world.mail_to(CHAN_MAIL) == []

    # The notice job runs again (a retry after a worker was killed): nobody is told twice.
    with world.sessions() as session:
        session.add(
            Outbox(
                **job_row(
                    "send_incident_notices",
                    queue="low",
                    now=world.now,
                    incident_id=incident["id"],
                    step="declared",
                )
            )
        )
        session.commit()
    world.drain()
    assert len(world.sms_sent(WANG_PHONE)) == 1 and len(world.mail_to(WANG_MAIL)) == 1
    listed = world.hotline("incidents", "list", "--format", "json")[0]
    assert listed["notices"]["declared"] == {"sent": 2, "kept": 2}

    # 14:05 Wang calls: he hears the announcement in Mandarin first, then hangs up.
    world.at(taipei(14, 5))
    call = world.call([HANGUP], caller=WANG_PHONE)
    [announcement] = [text for _, text in call.said]
    assert announcement.startswith("特别通知：B座电梯故障") and "预计18:00前完成" in announcement
    world.drain()
    tickets = world.hotline("tickets", "list", "--format", "json")
    assert [
        t for t in tickets if t["contact_phone"] == WANG_PHONE
    ] == []  # no ticket, no missed call
    assert (
        world.hotline("incidents", "show", str(incident["id"]), "--format", "json")["contacts"] == 1
    )

    # 14:10 Wong writes about the lift: acknowledged with the incident, linked, not routed.
    world.at(taipei(14, 10))
    world.send_mail(
        sender=WONG_MAIL, subject="升降機又壞了", body="B座的升降機停了，我家有老人上不去。"
    )
    world.drain()
    [ack] = notices_to(world, WONG_MAIL, "ack_email")
    assert "您的來信已收到" in ack.subject and "2030-10-16 18:00" in ack.body_text
    assert "升降機故障" in ack.body_text
    [ticket] = [
        t
        for t in world.hotline("tickets", "list", "--format", "json")
        if t["contact_email"] == WONG_MAIL
    ]
    assert ticket["status"] == "new" and ticket["department"] is None
    shown = world.hotline("incidents", "show", str(incident["id"]), "--format", "json")
    assert shown["tickets"] == [{"ref": ticket["ref"], "status": "new"}]

    # 17:30 fixed: resolve. The linked ticket is resolved; the all-clear goes out once each.
    world.at(taipei(17, 30))
    resolved = world.hotline("incidents", "resolve", str(incident["id"]), "--format", "json")
    assert resolved["status"] == "resolved"
    world.drain()
    sms = world.sms_sent(WANG_PHONE)
    assert len(sms) == 2 and "处理完毕" in sms[1]["Body"]
    assert len(notices_to(world, WANG_MAIL, "incident_notice_resolved")) == 1
    # Wong is told on his own ticket (its resolved message), not a second time as a household.
    assert notices_to(world, WONG_MAIL, "incident_notice_resolved") == []
    assert len(notices_to(world, WONG_MAIL, "reply_resolved")) == 1
    [ticket] = [
        t
        for t in world.hotline("tickets", "list", "--format", "json")
        if t["contact_email"] == WONG_MAIL
    ]
    assert ticket["status"] == "resolved"
    # The supervisor's figures: one incident, 3.5 hours, one call absorbed, one ticket grouped.
    page = world.console(SUPERVISOR).get("/incidents").get_data(as_text=True)
    for stat, value in (
        ("incidents", "1"),
        ("mean_minutes", "3:30"),
        ("contacts_absorbed", "1"),
        ("tickets_grouped", "1"),
    ):
        assert f'data-stat="{stat}">{value}<' in page, stat


def test_a_cantonese_caller_hears_it_after_choosing_and_presses_1_for_the_menu(
    world: World,
) -> None:
    world.at(taipei(15, 0))
    declare(world)
    world.drain()
    # A Hong Kong resident is asked the language first; he picks Cantonese (2), then hears it.
    call = world.call([press("2"), press("1"), HANGUP], caller=WONG_PHONE)
    said = [(lang, text) for lang, text in call.said]
    at = next(i for i, (_, text) in enumerate(said) if "升降機故障" in text)
    assert said[at][0] == "yue-HK" and said[at][1].startswith("特別通知：B座升降機故障")
    assert "預計18:00之前完成" in said[at][1] and "請按1" in said[at][1]
    assert any("廣東話請按2" in text for _, text in said[:at])  # the language menu came first
    assert len(said) > at + 1 and said[at + 1][0] == "yue-HK"  # then the menu, in Cantonese
    world.drain()
    tickets = world.hotline("tickets", "list", "--format", "json")
    mine = [t for t in tickets if t["contact_phone"] == WONG_PHONE]
    # He went on past the announcement and hung up in the menu: a missed call, as for anyone.
    assert len(mine) == 1 and mine[0]["channel"] == "voice"


def test_a_caller_we_do_not_know_chooses_the_building_and_hears_it(world: World) -> None:
    """A visitor's or a new tenant's phone is not on file: the main menu offers 8, they pick the
    building and hear the same announcement; hanging up then files nothing."""
    stranger = "+886912999999"
    world.at(taipei(15, 0))
    incident = declare(world)
    world.drain()
    call = world.call([press("1"), press("8"), press("1"), HANGUP], caller=stranger)
    said = [text for _, text in call.said]
    assert any("請按8" in text for text in said), said  # offered in the main menu
    assert "翠林苑B座，請按1。" in said
    assert said[-1].startswith("特別通知：B座升降機故障"), said
    world.drain()
    tickets = world.hotline("tickets", "list", "--format", "json")
    assert [t for t in tickets if t["contact_phone"] == stranger] == []
    shown = world.hotline("incidents", "show", str(incident["id"]), "--format", "json")
    assert shown["contacts"] == 1

    # Once it is resolved, nobody is offered 8 any more.
    world.hotline("incidents", "resolve", str(incident["id"]), "--format", "json")
    world.at(taipei(15, 5))
    later = world.call([press("1"), HANGUP], caller=stranger)
    assert not any("請按8" in text for _, text in later.said)


def test_the_estates_building_system_announces_planned_works_over_the_api(world: World) -> None:
    """The estate's building-management system gets a supervisor token from
    `hotline api-token create --role supervisor` and announces tomorrow's water works in block B
    itself: every household of B is told once, in their language; when the system resolves the
    works the all-clear goes out once, even if it sends the request twice. A front-desk program's operator token may not declare."""
    world.at(taipei(16, 0))
    works = {
        "buildings": ["B"],
        "category": "repair",
        "kind": "planned",
        "texts": {
            "zh-Hant": "B座明日上午九時至十二時停水，更換水管。",
            "zh-Hans": "B座明日上午九时至十二时停水，更换水管。",
            "en": "Water to Block B is off tomorrow 9:00-12:00 to replace pipes.",
        },
        "starts_at": "2030-10-17T09:00:00+08:00",
        "expected_end_at": "2030-10-17T12:00:00+08:00",
        "notify": True,
    }
    front_desk = world.api("front-desk-app")
    refused = front_desk.post("/api/v1/incidents", works)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"

    building_system = world.api("estate-bms", role="supervisor")
    declared = building_system.post("/api/v1/incidents", works)
    assert declared.status_code == 201, declared.json
    incident = declared.json
    assert declared.headers["Location"] == f"/api/v1/incidents/{incident['id']}"
    assert (incident["kind"], incident["buildings"]) == ("planned", ["B"])
    world.drain()

    [wang_sms] = world.sms_sent(WANG_PHONE)
    assert "九时至十二时停水" in wang_sms["Body"]
    [wong_mail] = world.mail_to(WONG_MAIL)
    assert "九時至十二時停水" in wong_mail["body_text"]
    assert world.sms_sent(CHAN_PHONE) == [] and world.mail_to(CHAN_MAIL) == []
    # The operators see it as anyone declared it: on the console's incidents page.
    page = world.console(SUPERVISOR).get("/incidents").get_data(as_text=True)
    assert "B座明日上午九時至十二時停水" in page

    world.at(datetime(2030, 10, 17, 11, 40, tzinfo=TAIPEI))
    path = f"/api/v1/incidents/{incident['id']}/resolve"
    done = building_system.post(path, {"note": "B座供水已恢復。"})
    assert done.status_code == 200 and done.json["status"] == "resolved"
    world.drain()
    # The system's retry of the same request (its response was lost) changes nothing.
    again = building_system.post(path, {})
    assert again.status_code == 200 and again.json["resolved_at"] == done.json["resolved_at"]
    world.drain()
    sms = world.sms_sent(WANG_PHONE)
    assert len(sms) == 2 and len(world.mail_to(WONG_MAIL)) == 2
    assert len(world.sms_sent(WONG_PHONE)) == 2
