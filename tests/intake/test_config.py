from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from intake.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    RuleConditions,
    load_config,
    parse_config,
)


def _defaults() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def test_it_loads_the_shipped_defaults_built_from_the_domain():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.ticket_prefix == "HL"
    assert config.default_language == "zh-Hant"
    assert {c.code for c in config.categories} >= {
        "repair",
        "complaint",
        "inquiry",
        "suggestion",
        "billing",
        "renovation",
        "emergency",
        "praise",
        "other",
    }
    assert {d.code for d in config.departments} == {
        "customer_service",
        "engineering",
        "security",
        "cleaning",
        "billing",
        "management",
    }
    assert "漏水" in config.category("repair").keywords
    assert config.routing_rules[-1].when == RuleConditions()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("timezone",), "Mars/Olympus", "timezone: expected an IANA time zone"),
        (("business_hours", "mon"), "9-18", "business_hours.mon: expected 'HH:MM-HH:MM' or null"),
        (
            ("company", "ticket_prefix"),
            "hl-",
            "company.ticket_prefix: expected 1-6 capital letters",
        ),
        (("holidays", "country"), "XX", "holidays.country: expected a country code"),
        (("languages", "default"), "fr", "languages.default: expected one of"),
        (
            ("callbacks", "retry_spacing_minutes"),
            "soon",
            "callbacks.retry_spacing_minutes: expected an integer, got 'soon'",
        ),
        (("callbacks", "survey"), "perhaps", "callbacks.survey: expected true or false"),
        (("mail", "storm_limit_per_minute"), 0, "mail.storm_limit_per_minute: expected a number"),
        (
            ("voice", "languages", "yue", "say"),
            "yue",
            "voice.languages.yue.say: expected one of ('cmn-TW'",
        ),
        (
            ("voice", "desk", "after_max_wait"),
            "hang_up",
            "voice.desk.after_max_wait: expected one of 'voicemail' or 'callback', got 'hang_up'",
        ),
        (
            ("notifications", "page_priorities"),
            ["P0"],
            "notifications.page_priorities[0]: expected one of P1..P4, got 'P0'",
        ),
        (
            ("callbacks", "retry_spacing_minuts"),
            30,
            "callbacks.retry_spacing_minuts: expected a known key "
            "(did you mean retry_spacing_minutes?), got 'retry_spacing_minuts'",
        ),
        (
            ("voice", "emergency_departments"),
            ["engineering", "plumbing"],
            "voice.emergency_departments[1]: expected one of ['billing'",
        ),
    ],
)
def test_it_names_the_key_and_what_was_expected(path, value, expected):
    data = _defaults()
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_defaults_live_in_the_model_and_sections_are_read_as_attributes():
    data = _defaults()
    del data["callbacks"]
    data["voice"] = None
    config = parse_config(data)
    assert config.callbacks.missed_call_window_minutes == 120
    assert config.voice.desk.after_max_wait == "voicemail"
    assert config.voice.burst == 1.0
    assert config.page_manager_after_minutes == config.sla.manager_after_minutes == 60
    assert [lang for lang in config.voice.languages] == ["zh-Hant", "yue", "en", "zh-Hans"]


def test_it_rejects_a_routing_rule_to_an_unknown_department():
    data = _defaults()
    data["routing_rules"][0]["then"]["department"] = "plumbing"
    with pytest.raises(ConfigError, match=r"routing_rules\[0\]\.then\.department: expected one of"):
        parse_config(data)


@pytest.mark.parametrize(
    ("section", "key", "value", "line"),
    [
        (
            "business_hours",
            "fri",
            "late",
            "business_hours.fri: expected 'HH:MM-HH:MM' or null, got 'late'",
        ),
        (
            "callbacks",
            "retry_spacing_minuts",
            30,
            "callbacks.retry_spacing_minuts: expected a known key "
            "(did you mean retry_spacing_minutes?), got 'retry_spacing_minuts'",
        ),
    ],
)
def test_a_bad_config_stops_the_command_with_one_line(
    tmp_path: Path, section: str, key: str, value: object, line: str
):
    bad = _defaults()
    bad[section][key] = value
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "intake.cli", "tickets", "list"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOTLINE_CONFIG": str(path),
            "HOTLINE_DATA_DIR": str(tmp_path / "var"),
        },
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"configuration error: {line}"]


def test_a_bad_database_url_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from intake.config import load_settings

    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(
        ConfigError, match="DATABASE_URL: expected a sqlite:/// or postgresql:// URL"
    ):
        load_settings(env_file=None)
