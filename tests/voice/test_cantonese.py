"""Cantonese, complete: everything a caller can hear has written-Cantonese (`yue`) words, a
Cantonese call says them and never Mandarin, and a Hong Kong resident's choice is remembered.

The phrases a caller can hear are found, not listed: every zh-Hant `voice_*` template except the
ones written on the ticket (`voice.languages.RECORD_PHRASES`), every template the voice code names,
and the spoken reference.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2 import meta
from sqlalchemy import select

from intake import phrases
from intake.constants import LANGUAGES
from intake.models import Resident, Ticket
from voice.languages import RECORD_PHRASES
from voice.simulator import HANGUP, press, say

TEMPLATES = phrases.TEMPLATE_DIR
VOICE_CODE = Path(__file__).parents[2] / "voice"
HONG_KONG = "+85291234567"  # 黃志強 in the demo seed: writes zh-Hant, never chose a spoken variety


def _names(language: str, pattern: str) -> set[str]:
    return {p.stem for p in (TEMPLATES / language).glob(pattern)}


def _named_in_voice_code() -> set[str]:
    """Every string constant in voice/*.py that names a zh-Hant template."""
    known = _names("zh-Hant", "*.txt")
    found: set[str] = set()
    for path in VOICE_CODE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in known:
                found.add(node.value)
    return found


def _said_in_voice_code() -> set[str]:
    """Template names passed straight to a `say(...)` in voice/*.py."""
    found: set[str] = set()
    for path in VOICE_CODE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "say"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def heard_phrases() -> set[str]:
    heard = _names("zh-Hant", "voice_*.txt") | _named_in_voice_code() | {"ref_spoken"}
    heard = {name for name in heard if name.startswith("voice_") or name == "ref_spoken"}
    if "yue" in LANGUAGES:  # on-call engineers could then be paged in Cantonese
        heard |= _names("zh-Hant", "notify_page_*voice.txt")
    return heard - RECORD_PHRASES


def _variables(path: str) -> set[str]:
    env = phrases.environment()
    source = env.loader.get_source(env, path)[0]  # type: ignore[union-attr]
    return set(meta.find_undeclared_variables(env.parse(source)))


def test_the_list_of_heard_phrases_is_found_not_empty() -> None:
    heard = heard_phrases()
    assert {"voice_greeting", "voice_main_menu", "voice_progress_status", "ref_spoken"} <= heard
    assert len(heard) >= 30


@pytest.mark.parametrize("name", sorted(heard_phrases()))
def test_every_heard_phrase_has_cantonese_words(name: str) -> None:
    assert (TEMPLATES / "yue" / f"{name}.txt").is_file(), (
        f"{name}: a Cantonese caller would hear the zh-Hant (Mandarin) words read by yue-HK"
    )
    assert phrases.template_name(name, "yue") == f"yue/{name}.txt"


@pytest.mark.parametrize("name", sorted(_names("yue", "*.txt")))
def test_cantonese_words_take_the_same_variables(name: str) -> None:
    assert _variables(f"yue/{name}.txt") == _variables(f"zh-Hant/{name}.txt")


def test_record_phrases_are_written_not_said() -> None:
    """The exceptions are real: templates that exist, are never said, and stay written Chinese."""
    assert _names("zh-Hant", "voice_*.txt") >= RECORD_PHRASES
    assert not RECORD_PHRASES & _said_in_voice_code()
    assert not RECORD_PHRASES & _names("yue", "*.txt"), "ticket text stays in the written script"


def test_on_call_pages_are_never_in_cantonese() -> None:
    """Pages are read in `languages.default`, one of the written languages: no Cantonese page."""
    assert "yue" not in LANGUAGES


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str]]]:
    """Every (phrase, language asked for, template file used) while the test runs."""
    seen: list[tuple[str, str, str]] = []
    original: Callable[[str, str], str] = phrases.template_name

    def spy(name: str, language: str) -> str:
        path = original(name, language)
        seen.append((name, language, path))
        return path

    monkeypatch.setattr(phrases, "template_name", spy)
    yield seen


def _assert_all_cantonese(
    rendered: list[tuple[str, str, str]], said: list[tuple[str, str]]
) -> None:
    asked = [(name, path) for name, lang, path in rendered if lang == "yue"]
    assert asked, "nothing was rendered in Cantonese"
    fallbacks = [
        path for name, path in asked if name not in RECORD_PHRASES and not path.startswith("yue/")
    ]
    assert not fallbacks, f"Cantonese caller heard zh-Hant words from {fallbacks}"
    assert said and {code for code, _ in said} == {"yue-HK"}


def test_a_cantonese_call_says_cantonese(phone, sessions, rendered) -> None:  # type: ignore[no-untyped-def]
    first = phone(
        [press("2"), press("1"), say("部電梯壞咗，停咗喺三樓")],
        caller="+886955123456",
        record_seconds=0,
    )
    after_menu = first.said[4:]  # the greeting and the three language options come first
    text = "\n".join(words for _, words in after_menu)
    assert "唔該" in text or "我哋" in text
    assert "你嘅報修已經受理" in text and "我哋會盡快安排專人跟進" in text
    assert "我們" not in text and "您" not in text, "Mandarin words in a Cantonese call"
    _assert_all_cantonese(rendered, after_menu)
    with sessions() as session:
        ticket = session.scalar(select(Ticket))
        assert ticket is not None and ticket.language == "zh-Hant", "written in Traditional"
        number = str(ticket.id)
    rendered.clear()
    second = phone([press("2"), press("4"), press(number), HANGUP], caller="+886955123456")
    spoken = "\n".join(words for _, words in second.said[4:])
    assert "唔該輸入單號" in spoken and "而家嘅狀態係：已經受理，等緊分派" in spoken
    _assert_all_cantonese(rendered, second.said[4:])


def test_hong_kong_resident_is_asked_once_then_remembered(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    first = phone([HANGUP], caller=HONG_KONG)
    assert "廣東話請按2" in first.text(), "zh-Hant script from Hong Kong: Cantonese or Mandarin?"
    phone([press("2"), HANGUP], caller=HONG_KONG)
    with sessions() as session:
        resident = session.scalar(select(Resident).where(Resident.name == "黃志強"))
        assert resident is not None
        assert (resident.spoken_language, resident.language) == ("yue", "zh-Hant")
    again = phone([HANGUP], caller=HONG_KONG)
    assert again.said[0] == ("yue-HK", "黃志強你好，呢度係康和物業客服中心。")
    assert "廣東話請按" not in again.text() and "國語請按" not in again.text()


def test_taiwan_resident_writing_zh_hant_is_still_greeted_in_mandarin(phone) -> None:  # type: ignore[no-untyped-def]
    result = phone([HANGUP], caller="+886912000001")
    assert result.said[0] == ("cmn-TW", "陳大文您好，這裡是康和物業客服中心。")


def test_written_script_of_the_resident_is_kept_for_their_ticket(phone, sessions) -> None:  # type: ignore[no-untyped-def]
    """A resident who reads English but speaks Cantonese is written to in English."""
    with sessions() as session:
        resident = session.scalar(select(Resident).where(Resident.name == "Emily Carter"))
        assert resident is not None
        resident.spoken_language = "yue"
        session.commit()
    result: Any = phone([press("1"), say("廚房水喉漏水")], caller="+886912000005", record_seconds=0)
    assert result.said[0][0] == "yue-HK"
    with sessions() as session:
        ticket = session.scalar(select(Ticket))
        assert ticket is not None and ticket.language == "en"
