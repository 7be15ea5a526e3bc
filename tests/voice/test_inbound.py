"""Inbound calls end to end through the simulator, in all three languages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from intake.models import Attachment, Call, Callback, CallStatusEvent, Interaction, Resident, Ticket
from intake.phrases import spoken_ref
from tests.voice.conftest import CLOSED, HOTLINE
from voice.simulator import HANGUP, SILENCE, press, say


def _one_ticket(sessions: Any) -> Ticket:
    with sessions() as session:
        tickets = list(session.scalars(select(Ticket)))
        assert len(tickets) == 1, [t.subject for t in tickets]
        ticket = tickets[0]
        _ = ticket.interactions, ticket.callbacks, ticket.events
        for interaction in ticket.interactions:
            _ = interaction.attachments
        return ticket


def _call(sessions: Any, sid: str) -> Call:
    with sessions() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        assert call is not None
        return call


def test_known_resident_reports_a_repair_and_hears_the_reference(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone([press("1"), say("廚房水管漏水，地板都濕了"), say("補充：在洗碗盆下面")])
    ticket = _one_ticket(sessions)
    assert (
        ticket.channel == "voice" and ticket.category == "repair" and ticket.language == "zh-Hant"
    )
    assert "廚房水管漏水" in ticket.description and ticket.contact_phone == "+886912000001"
    assert ticket.resident_id is not None
    said = result.text()
    assert "陳大文您好" in said and "國語請按" not in said, (
        "a known resident skips the language menu"
    )
    assert spoken_ref(ticket.ref or "", "zh-Hant") in said
    assert all(lang == "cmn-TW" for lang, _ in result.said)
    recording = [i for i in ticket.interactions if i.kind == "voicemail"]
    assert len(recording) == 1 and recording[0].attachments[0].external_id.startswith("RE")
    call = _call(sessions, result.call_sid)
    assert call.filed and call.ticket_id == ticket.id and call.status == "completed"
    assert call.ivr_path[:2] == ["greeted", "menu:repair"]


@pytest.mark.parametrize(
    ("digit", "say_code", "speech_code", "words", "phrase"),
    [
        ("1", "cmn-TW", "cmn-Hant-TW", "電梯壞了，一直停在三樓", "您的報修已受理"),
        ("2", "yue-HK", "yue-Hant-HK", "部電梯壞咗，停咗喺三樓", "你嘅報修已經受理"),
        (
            "3",
            "en-US",
            "en-US",
            "The lift is broken and stuck on the third floor",
            "Your repair request has been received",
        ),
    ],
)
def test_unknown_caller_chooses_a_language(
    phone, sessions, client, digit, say_code, speech_code, words, phrase
) -> None:  # type: ignore[no-untyped-def]
    result = phone([press(digit), press("1"), say(words)], caller="+886955123456", record_seconds=0)
    said = result.text()
    assert "國語請按1" in said and "廣東話請按2" in said and "For English, press 3" in said
    assert phrase in said
    after_choice = [lang for lang, _ in result.said[4:]]
    assert after_choice and set(after_choice) == {say_code}
    speech_gathers = [e for e in result.exchanges if "/voice/describe/done" in e.url]
    assert speech_gathers
    describe_doc = next(e.body for e in result.exchanges if 'input="speech"' in e.body)
    assert f'language="{speech_code}"' in describe_doc
    ticket = _one_ticket(sessions)
    assert ticket.category == "repair" and words in ticket.description
    assert (
        _call(sessions, result.call_sid).language == {"1": "zh-Hant", "2": "yue", "3": "en"}[digit]
    )


def test_language_choice_is_remembered_for_the_resident(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        resident = session.scalar(select(Resident).where(Resident.name == "Emily Carter"))
        assert resident is not None
        resident.spoken_language, resident.language = None, None
        session.commit()
    phone([press("2"), HANGUP], caller="+886912000005")
    with sessions() as session:
        resident = session.scalar(select(Resident).where(Resident.name == "Emily Carter"))
        assert resident is not None and resident.spoken_language == "yue"
    second = phone([HANGUP], caller="+886912000005")
    assert second.said[0] == ("yue-HK", "Emily Carter你好，呢度係康和物業客服中心。")


def test_mainland_resident_is_greeted_in_mandarin_cn(phone) -> None:  # type: ignore[no-untyped-def]
    result = phone([HANGUP], caller="+8613800138000")
    assert result.said[0][0] == "cmn-CN" and "王建国您好" in result.said[0][1]


def test_speech_at_the_menu_files_the_report_at_once(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone([say("我要投訴樓上半夜噪音很吵"), HANGUP])
    ticket = _one_ticket(sessions)
    assert ticket.category == "complaint" and "噪音" in ticket.description
    assert spoken_ref(ticket.ref or "", "zh-Hant") in result.text()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Callback)) == 0, (
            "filed: not a missed call"
        )


def test_empty_recording_keeps_the_ticket(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone([press("2"), SILENCE, SILENCE], record_seconds=0)
    ticket = _one_ticket(sessions)
    assert ticket.category == "complaint"
    assert "沒有留下描述" in ticket.description
    assert spoken_ref(ticket.ref or "", "zh-Hant") in result.text()
    assert result.exchanges[-4].url.endswith("/voice/record/none?topic=complaint")


def test_recording_without_speech_files_a_voicemail_ticket(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([press("1"), SILENCE, say("錄音內容")])
    ticket = _one_ticket(sessions)
    assert ticket.category == "repair"
    with sessions() as session:
        attachments = list(session.scalars(select(Attachment)))
        assert len(attachments) == 1 and attachments[0].content_type == "audio/wav"


def test_same_call_sid_twice_is_one_call_and_one_ticket(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    sid = "CA" + "ab" * 16
    phone([press("1"), say("門禁對講機壞了")], call_sid=sid)
    phone([press("1"), say("門禁對講機壞了")], call_sid=sid)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1
        assert (
            session.scalar(
                select(func.count()).select_from(Interaction).where(Interaction.kind == "call")
            )
            == 1
        )


def test_recording_callbacks_attach_once_by_recording_sid(phone, sessions, client, demo) -> None:  # type: ignore[no-untyped-def]
    from voice.signature import sign

    result = phone([press("1"), say("燈壞了")])
    recording_post = next(e for e in result.exchanges if e.url.endswith("/voice/recording"))
    for _ in range(2):
        response = client.post(
            "/voice/recording",
            data=recording_post.params,
            headers={
                "X-Twilio-Signature": sign(
                    demo.webhook_auth_token, recording_post.url, recording_post.params
                )
            },
        )
        assert response.status_code == 200
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1


def test_status_callbacks_duplicated_and_out_of_order(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone([press("1"), say("馬桶堵塞")], duplicate_status=True, out_of_order=True)
    call = _call(sessions, result.call_sid)
    assert call.status == "completed" and call.ended_at is not None and call.duration_seconds
    with sessions() as session:
        events = list(
            session.scalars(
                select(CallStatusEvent).where(CallStatusEvent.call_sid == result.call_sid)
            )
        )
        assert sorted(e.sequence_number for e in events) == [0, 1, 2]


def test_hanging_up_in_the_menu_leaves_a_missed_call_with_one_callback(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([HANGUP], caller="+886912000002")
    phone([SILENCE, HANGUP], caller="+886912000002", duplicate_status=True)
    ticket = _one_ticket(sessions)
    assert [i.kind for i in ticket.interactions] == ["missed_call", "missed_call"]
    assert "+886912000002" in ticket.subject
    assert [(c.purpose, c.phone) for c in ticket.callbacks] == [("missed_call", "+886912000002")]


def test_words_posted_after_the_final_status_join_the_missed_call_ticket(
    simulator_for, sessions
) -> None:  # type: ignore[no-untyped-def]
    """The caller speaks and hangs up; Twilio's final status arrives before the speech result.
    The status files a missed call; the words must still reach that ticket, once."""
    import xml.etree.ElementTree as ET

    simulator = simulator_for([press("1"), HANGUP])
    result = simulator.call("+886912000001", HOTLINE)
    describe = next(e for e in reversed(result.exchanges) if 'input="speech"' in e.body)
    action = ET.fromstring(describe.body).find(".//Gather").get("action")  # type: ignore[union-attr]
    words = {"SpeechResult": "廚房水管爆了，水一直流", "Confidence": "0.92"}
    late = [simulator._post(action, words) for _ in range(2)]  # Twilio retries a webhook
    assert all(e.status == 200 and "<Response" in e.body for e in late)
    ticket = _one_ticket(sessions)
    assert [i.kind for i in ticket.interactions] == ["missed_call", "call"]
    assert "廚房水管爆了" in (ticket.interactions[1].body_text or "")
    assert [c.purpose for c in ticket.callbacks] == ["missed_call"]


def test_a_final_status_that_read_the_call_before_its_words_were_filed_owes_no_callback(
    phone, sessions, demo
) -> None:  # type: ignore[no-untyped-def]
    """The other order of the same race: the status handler read the call as not yet filed, and
    the words were filed before it filed its missed call. The ticket keeps the words only."""
    from voice import filing

    result = phone([press("1"), say("走廊的燈壞了")], record_seconds=0)
    stale = _call(sessions, result.call_sid)
    stale.filed, stale.ticket_id = False, None  # as the status handler had read it
    filing.file_missed_call(sessions, stale, demo.config)
    ticket = _one_ticket(sessions)
    assert [i.kind for i in ticket.interactions] == ["call"]
    assert not [c for c in ticket.callbacks if c.purpose == "missed_call"]


def test_hanging_up_during_the_language_menu_after_the_greeting_counts(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([HANGUP], caller="+886955000111")
    ticket = _one_ticket(sessions)
    assert ticket.callbacks[0].purpose == "missed_call"


def test_emergency_p1_then_on_call_in_turn_then_voicemail_and_paging(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone(
        [press("9"), say("三樓走廊冒煙")], dial_outcomes=["no-answer", "busy", "no-answer"]
    )
    ticket = _one_ticket(sessions)
    assert ticket.priority == "P1" and ticket.category == "emergency" and ticket.needs_paging
    dials = [e for e in result.exchanges if "/voice/emergency/dialed" in e.url]
    assert [e.params["DialCallStatus"] for e in dials] == ["no-answer", "busy", "no-answer"]
    bodies = "".join(e.body for e in result.exchanges)
    for number in ("+886912345001", "+886912345002", "+886912345101"):
        assert f"<Number>{number}</Number>" in bodies
    assert any(i.kind == "voicemail" for i in ticket.interactions)


def test_emergency_answered_on_call_no_paging(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([press("9")], dial_outcomes=["no-answer", "completed"])
    ticket = _one_ticket(sessions)
    assert ticket.priority == "P1" and not ticket.needs_paging
    assert any(e.kind == "on_call_answered" for e in ticket.events)


def test_spoken_emergency_at_the_menu(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([say("走廊冒煙了，好像有火災")], dial_outcomes=["completed"])
    assert _one_ticket(sessions).priority == "P1"


def test_operator_bridged_in_business_hours_files_nothing(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    result = phone([press("0")])
    assert "<Enqueue" in "".join(e.body for e in result.exchanges)
    assert "您目前排在第3位" in result.text()  # Twilio counts from 1: third in line
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_virtual_hold_keeps_the_queue_time(phone, sessions, clock) -> None:  # type: ignore[no-untyped-def]
    result = phone([press("0"), press("1")])
    ticket = _one_ticket(sessions)
    assert spoken_ref(ticket.ref or "", "zh-Hant") in result.text()
    [callback] = ticket.callbacks
    assert callback.purpose == "virtual_hold" and callback.queued_at == clock.now
    assert callback.phone == "+886912000001"


def test_after_hours_voicemail_and_callback_at_next_opening(phone, sessions, clock) -> None:  # type: ignore[no-untyped-def]
    clock.now = CLOSED
    result = phone([press("0"), say("請回電給我")], caller="+886912000005")
    assert "Opening hours are" in result.text() and result.said[-1][0] == "en-US"
    ticket = _one_ticket(sessions)
    [callback] = ticket.callbacks
    assert callback.purpose == "after_hours"
    assert callback.due_at.astimezone(clock.now.tzinfo) > clock.now
    assert any(i.kind == "voicemail" and i.attachments for i in ticket.interactions)


def test_progress_is_read_only_to_the_ticket_contact(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    phone([press("1"), say("客廳冷氣不冷")], record_seconds=0)
    ticket = _one_ticket(sessions)
    number = str(ticket.id)
    mine = phone([press("4"), press(number), HANGUP])
    assert "目前的狀態是：已受理，等待分派" in mine.text()
    other = phone([press("4"), press(number), HANGUP], caller="+886912000002")
    assert "只能向登記的聯絡電話讀出進度" in other.text() and "目前的狀態" not in other.text()
    missing = phone([press("4"), press("999999"), HANGUP])
    assert "找不到這個單號" in missing.text()
    with sessions() as session:
        kinds = sorted(session.scalars(select(Interaction.kind)))
        assert kinds == ["call", "missed_call", "missed_call"], (
            "a progress answer is not a missed call"
        )


def test_fallback_apologises_and_takes_a_voicemail(simulator_for, sessions) -> None:  # type: ignore[no-untyped-def]
    from tests.voice.conftest import check_twiml

    simulator = simulator_for([say("系統壞了嗎")])
    result = simulator.call("+886912000001", "+886227000000", incoming_path="/voice/fallback")
    check_twiml(result)
    assert "系統暫時出現問題" in result.text()
    ticket = _one_ticket(sessions)
    assert [c.purpose for c in ticket.callbacks] == ["voicemail"]


LANGUAGES = [("1", "cmn-TW"), ("2", "yue-HK"), ("3", "en-US")]


@pytest.mark.parametrize(("digit", "say_code"), LANGUAGES)
@pytest.mark.parametrize(
    ("flow", "expect"),
    [
        ([press("9"), say("fire 火警")], "emergency"),
        ([press("0"), press("1")], "virtual_hold"),
        ([press("0")], "after_hours"),
        ([press("4"), press("123456"), HANGUP], "progress"),
        ([SILENCE, HANGUP], "missed_call"),
    ],
    ids=["emergency", "virtual-hold", "after-hours", "progress", "missed-call"],
)
def test_every_flow_in_every_language(
    phone, sessions, clock, digit, say_code, flow, expect
) -> None:  # type: ignore[no-untyped-def]
    if expect == "after_hours":
        clock.now = CLOSED
    result = phone([press(digit), *flow], caller="+886955777888", dial_outcomes=["no-answer"] * 3)
    spoken = {lang for lang, _ in result.said[4:]}
    assert spoken == {say_code}, result.said
    with sessions() as session:
        ticket = session.scalar(select(Ticket))
        assert ticket is not None
        purposes = list(session.scalars(select(Callback.purpose)))
    expected_language = "en" if digit == "3" else "zh-Hant"
    assert ticket.language == expected_language
    if expect == "emergency":
        assert ticket.priority == "P1" and ticket.needs_paging and purposes == []
    elif expect == "progress":
        assert purposes == ["missed_call"], "an unknown reference answered, then a hang-up"
    else:
        assert purposes == [expect]


def test_hanging_up_while_leaving_a_message_files_that_report_not_a_missed_call(
    phone, sessions, client, demo
) -> None:  # type: ignore[no-untyped-def]
    """Twilio may send `completed` before the Record action: the report is filed either way."""
    from voice.signature import sign

    result = phone([press("1"), SILENCE, HANGUP])
    ticket = _one_ticket(sessions)
    assert ticket.category == "repair" and "留言時掛斷" in ticket.description
    assert ticket.callbacks == []
    url = demo.public_base_url + "/voice/recorded?topic=repair"
    late = {
        "CallSid": result.call_sid,
        "From": "+886912000001",
        "To": "+886227000000",
        "RecordingSid": "RE" + "9" * 32,
        "RecordingUrl": "https://api.twilio.com/x",
        "RecordingDuration": "9",
    }
    response = client.post(
        "/voice/recorded?topic=repair",
        data=late,
        headers={"X-Twilio-Signature": sign(demo.webhook_auth_token, url, late)},
    )
    assert response.status_code == 200
    ticket = _one_ticket(sessions)
    assert [a.external_id for i in ticket.interactions for a in i.attachments] == ["RE" + "9" * 32]


def test_hanging_up_in_an_after_hours_message_still_owes_the_callback(
    phone, sessions, clock
) -> None:  # type: ignore[no-untyped-def]
    clock.now = CLOSED
    phone([press("0"), HANGUP])
    ticket = _one_ticket(sessions)
    assert [c.purpose for c in ticket.callbacks] == ["after_hours"]
