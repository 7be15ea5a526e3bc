"""Category, priority and language from the words residents use (keywords live in the configuration).

How matching behaves, and what the tests hold it to:
- Chinese keywords match as substrings (Chinese has no spaces); English keywords match at the start
  of a word, case-insensitively, so "leak" matches "leaking" but not "bleak".
- When keywords overlap, the longest wins: "爆水管" is an emergency, not also a "水管" repair;
  "門禁卡" is a security matter, not a "門禁" repair.
- A keyword directly after a negation is ignored: "不漏水了" (no longer leaking) is not a repair,
  "it is not leaking" is not a repair. Only the negated word is dropped: "the lift is not broken"
  still mentions the lift, so it is a repair. Other occurrences of the same word still count.
- Any emergency keyword makes the contact an emergency (P1); otherwise the category with the most
  hits wins, ties going to the earlier category in the configuration; no hit gives the channel's
  hint, or "other".
- Mixed Chinese and English text is matched with both rules at once. Any Chinese character makes the
  language Chinese: Traditional or Simplified by which characters dominate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import hanzidentifier

from intake.config import HotlineConfig
from intake.constants import LANGUAGES, PRIORITIES

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Classification:
    category: str
    priority: str
    language: str
    matched: tuple[str, ...]
    negated: tuple[str, ...]


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    keyword: str
    group: str


@dataclass(frozen=True)
class _Keyword:
    """A keyword ready to match: the text to look in, a substring that must occur, the pattern."""

    latin: bool
    needle: str
    pattern: re.Pattern[str]


@lru_cache(maxsize=4096)
def _keyword(word: str) -> _Keyword:
    """Compiled once per keyword (the configuration has a few hundred; a smaller cache thrashed)."""
    if word.isascii():
        return _Keyword(
            True, word.lower(), re.compile(r"(?<![A-Za-z0-9])" + re.escape(word.lower()))
        )
    return _Keyword(False, word, re.compile(re.escape(word)))


@lru_cache(maxsize=256)
def _negation_at_end(negation: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])" + re.escape(negation) + r"$")


def _negated(text: str, start: int, config: HotlineConfig) -> bool:
    before = text[max(0, start - 24) : start]
    if any(before.endswith(n) for n in config.negations_zh):
        return True
    words = before.rstrip().lower()
    if not before.endswith((" ", "\t", "\n")) and before:
        return False
    return any(_negation_at_end(n).search(words) for n in config.negations_en)


def find_keywords(
    text: str, groups: dict[str, tuple[str, ...]], config: HotlineConfig
) -> tuple[list[_Hit], list[_Hit]]:
    """Non-overlapping keyword hits (longest first) in `text`, split into counted and negated."""
    lowered = text.lower()
    candidates: list[_Hit] = []
    for group, words in groups.items():
        for word in words:
            keyword = _keyword(word)
            haystack = lowered if keyword.latin else text
            if keyword.needle not in haystack:  # a substring test is far cheaper than a scan
                continue
            for m in keyword.pattern.finditer(haystack):
                candidates.append(_Hit(m.start(), m.end(), word, group))
    candidates.sort(key=lambda h: (-(h.end - h.start), h.start))
    kept: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for hit in candidates:
        if any(hit.start < e and s < hit.end for s, e in taken):
            continue
        taken.append((hit.start, hit.end))
        kept.append(hit)
    counted = [h for h in kept if not _negated(lowered, h.start, config)]
    negated = [h for h in kept if h not in counted]
    return sorted(counted, key=lambda h: h.start), sorted(negated, key=lambda h: h.start)


def detect_language(text: str, hint: str | None, config: HotlineConfig) -> str:
    if hint in LANGUAGES:
        return hint
    if hint and hint.lower().startswith(("yue", "zh-hk", "zh-tw", "cmn-tw", "cmn-hant", "zh-hant")):
        return "zh-Hant"
    if hint and hint.lower().startswith(("zh-cn", "cmn-cn", "cmn-hans", "zh-hans", "zh-sg")):
        return "zh-Hans"
    if hint and hint.lower().startswith("en"):
        return "en"
    chars = _CJK.findall(text)
    if chars:
        trad = simp = 0
        for ch in chars:
            kind = hanzidentifier.identify(ch)
            if kind == hanzidentifier.TRADITIONAL:
                trad += 1
            elif kind == hanzidentifier.SIMPLIFIED:
                simp += 1
        if simp > trad:
            return "zh-Hans"
        if trad > simp:
            return "zh-Hant"
        return config.default_language if config.default_language != "en" else "zh-Hant"
    if _LATIN.search(text):
        return "en"
    return config.default_language


def classify(
    text: str,
    config: HotlineConfig,
    *,
    language_hint: str | None = None,
    category_hint: str | None = None,
    priority_hint: str | None = None,
) -> Classification:
    groups = {c.code: c.keywords for c in config.categories if c.keywords}
    counted, negated = find_keywords(text, groups, config)
    counts: dict[str, int] = {}
    for hit in counted:
        counts[hit.group] = counts.get(hit.group, 0) + 1
    order = [c.code for c in config.categories]
    if counts.get("emergency"):
        category = "emergency"
    elif counts:
        category = max(counts, key=lambda code: (counts[code], -order.index(code)))
    elif category_hint and config.category(category_hint):
        category = category_hint
    else:
        category = "other"
    if category_hint == "emergency":
        category = "emergency"
    found = config.category(category)
    priority = found.priority if found else "P4"
    raised, _ = find_keywords(text, dict(config.priority_keywords), config)
    candidates = [priority, *(h.group for h in raised)]
    if priority_hint in PRIORITIES:
        candidates.append(priority_hint)
    if category == "emergency":
        candidates.append("P1")
    return Classification(
        category=category,
        priority=min(candidates),
        language=detect_language(text, language_hint, config),
        matched=tuple(h.keyword for h in counted),
        negated=tuple(h.keyword for h in negated),
    )
