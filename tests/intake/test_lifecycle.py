"""The lifecycle's rules on their own: which changes are allowed, spoken scores, link expiry."""

from __future__ import annotations

import pytest

from intake.constants import STATUSES
from intake.lifecycle import TRANSITIONS, survey_score


def test_every_status_has_its_rules_and_new_is_only_reached_by_reopening() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())
    assert {s for s, targets in TRANSITIONS.items() if "new" in targets} == {"resolved", "closed"}
    assert TRANSITIONS["closed"] == {"routed", "in_progress", "new"}, "closed only reopens"


@pytest.mark.parametrize(
    ("words", "score"),
    [
        ("5", 5),
        ("五分", 5),
        ("五", 5),
        ("Five", 5),
        ("給五分吧", 5),
        ("滿分", 5),
        ("兩分", 2),
        ("three stars", 3),
        ("我覺得四分", 4),
        ("", None),
        ("不知道", None),
        ("三分或者四分", None),
        ("9", None),
    ],
)
def test_a_satisfaction_score_said_aloud(words: str, score: int | None) -> None:
    assert survey_score(words) == score
