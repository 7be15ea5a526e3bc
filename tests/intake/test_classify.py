from __future__ import annotations

import pytest

from intake.classify import classify
from intake.config import load_config

CONFIG = load_config()


@pytest.mark.parametrize(
    ("text", "category", "priority"),
    [
        ("我家廚房漏水，請派人維修", "repair", "P3"),
        ("不漏水了，謝謝", "other", "P4"),
        ("已經不漏水了", "other", "P4"),
        ("電梯困人！", "emergency", "P1"),
        ("电梯困人了快来", "emergency", "P1"),
        ("爆水管，水浸全屋", "emergency", "P1"),
        ("門禁卡不見了", "security", "P2"),
        ("停電了，整層都沒電", "repair", "P2"),
        ("樓上好吵，我要投訴噪音", "complaint", "P3"),
        ("請問物業費收據什麼時候寄出", "billing", "P4"),
        ("The lift is broken again", "repair", "P3"),
        ("it is not leaking any more", "other", "P4"),
        ("Gas leak in the corridor, please come", "emergency", "P1"),
        ("大堂 lift 又 broken 了", "repair", "P3"),
        ("hello", "other", "P4"),
    ],
)
def test_it_classifies_what_residents_write(text, category, priority):
    result = classify(text, CONFIG)
    assert (result.category, result.priority) == (category, priority)


def test_a_negated_keyword_is_reported_and_not_counted():
    result = classify("不漏水了", CONFIG)
    assert result.negated == ("漏水",)
    assert result.matched == ()


def test_only_the_negated_occurrence_is_dropped():
    result = classify("廚房不漏水了，但浴室還在漏水", CONFIG)
    assert result.category == "repair"
    assert result.matched == ("漏水",)


def test_the_longest_overlapping_keyword_wins():
    assert classify("爆水管", CONFIG).matched == ("爆水管",)


def test_english_keywords_match_at_word_starts_only():
    assert classify("a bleak outlook", CONFIG).category == "other"
    assert classify("leaking tap", CONFIG).category == "repair"


@pytest.mark.parametrize(
    ("text", "hint", "language"),
    [
        ("電梯壞了", None, "zh-Hant"),
        ("电梯坏了", None, "zh-Hans"),
        ("The lift is broken", None, "en"),
        ("lift 壞了", None, "zh-Hant"),
        ("", "en", "en"),
        ("電梯", "yue-HK", "zh-Hant"),
        ("電梯", "cmn-Hans-CN", "zh-Hans"),
    ],
)
def test_it_detects_the_written_language(text, hint, language):
    assert classify(text, CONFIG, language_hint=hint).language == language


def test_the_channel_can_insist_on_an_emergency():
    assert classify("", CONFIG, category_hint="emergency").priority == "P1"
