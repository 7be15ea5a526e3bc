"""All configuration in one place, parsed strictly at start-up.

Two sources: the environment (and a `.env` file) for deployment settings and secrets, and a YAML
file (`HOTLINE_CONFIG`, shipped defaults in `default_config.yaml`) for the centre's own data.
A bad value raises `ConfigError` whose message is one line naming the key and what was expected.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
LANGUAGES = ("zh-Hant", "zh-Hans", "en")
PRIORITIES = ("P1", "P2", "P3", "P4")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class ConfigError(ValueError):
    """A configuration value is wrong; str() is the one line shown to the user."""


@dataclass(frozen=True)
class Category:
    code: str
    priority: str
    names: dict[str, str]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Department:
    code: str
    names: dict[str, str]
    email: str | None
    on_call: tuple[str, ...]


@dataclass(frozen=True)
class SlaProfile:
    name: str
    first_response_minutes: int
    resolution_minutes: int
    business_time: bool


@dataclass(frozen=True)
class RoutingRule:
    name: str
    when: dict[str, Any]
    then: dict[str, Any]


@dataclass(frozen=True)
class HotlineConfig:
    """The centre's own data: what DOMAIN.md describes, editable without code."""

    company_names: dict[str, str]
    ticket_prefix: str
    phone_region: str
    timezone: ZoneInfo
    holiday_country: str | None
    holiday_subdivision: str | None
    business_hours: dict[int, tuple[time, time] | None]
    quiet_hours: tuple[time, time] | None
    default_language: str
    languages: tuple[str, ...]
    negations_zh: tuple[str, ...]
    negations_en: tuple[str, ...]
    categories: tuple[Category, ...]
    priority_keywords: dict[str, tuple[str, ...]]
    departments: tuple[Department, ...]
    sla_profiles: dict[str, SlaProfile]
    routing_rules: tuple[RoutingRule, ...]
    callbacks: dict[str, Any]
    voice: dict[str, Any]
    mail: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def department(self, code: str) -> Department | None:
        return next((d for d in self.departments if d.code == code), None)

    def company(self, language: str) -> str:
        return self.company_names.get(language) or self.company_names[self.default_language]


def _expect(cond: bool, key: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _span(key: str, value: Any) -> tuple[time, time] | None:
    if value in (None, "", "closed"):
        return None
    m = _SPAN.match(str(value)) if isinstance(value, str) else None
    _expect(m is not None, key, "'HH:MM-HH:MM' or null", value)
    assert m is not None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    _expect(
        isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        key,
        "a list of non-empty strings",
        value,
    )
    return tuple(value)


def _names(key: str, value: Any) -> dict[str, str]:
    _expect(
        isinstance(value, dict) and all(lang in value for lang in LANGUAGES),
        key,
        "a mapping with zh-Hant, zh-Hans and en",
        value,
    )
    return {k: str(v) for k, v in value.items()}


def parse_config(data: dict[str, Any]) -> HotlineConfig:
    _expect(isinstance(data, dict), "HOTLINE_CONFIG", "a YAML mapping", type(data).__name__)
    company = data.get("company") or {}
    _expect(isinstance(company, dict), "company", "a mapping", company)
    prefix = company.get("ticket_prefix", "HL")
    _expect(
        isinstance(prefix, str) and re.fullmatch(r"[A-Z]{1,6}", prefix) is not None,
        "company.ticket_prefix",
        "1-6 capital letters",
        prefix,
    )
    region = company.get("phone_region", "TW")
    _expect(
        region in phonenumbers.SUPPORTED_REGIONS,
        "company.phone_region",
        "an ISO 3166 region known to phonenumbers",
        region,
    )
    try:
        tz = ZoneInfo(str(data.get("timezone", "Asia/Taipei")))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone: expected an IANA time zone such as Asia/Taipei, got {data.get('timezone')!r}"
        ) from None
    hol = data.get("holidays") or {}
    country = hol.get("country")
    if country is not None:
        import holidays as holidays_lib

        _expect(
            country in holidays_lib.list_supported_countries(),
            "holidays.country",
            "a country code supported by the holidays package",
            country,
        )
    hours_raw = data.get("business_hours") or {}
    _expect(isinstance(hours_raw, dict), "business_hours", "a mapping of mon..sun", hours_raw)
    unknown = set(hours_raw) - set(WEEKDAYS)
    _expect(not unknown, "business_hours", "only mon..sun", sorted(unknown))
    hours = {i: _span(f"business_hours.{d}", hours_raw.get(d)) for i, d in enumerate(WEEKDAYS)}
    langs = data.get("languages") or {}
    default_language = langs.get("default", "zh-Hant")
    _expect(
        default_language in LANGUAGES, "languages.default", f"one of {LANGUAGES}", default_language
    )
    enabled = _str_list("languages.enabled", langs.get("enabled", list(LANGUAGES)))
    for lang in enabled:
        _expect(lang in LANGUAGES, "languages.enabled", f"items from {LANGUAGES}", lang)
    neg = data.get("negations") or {}
    categories = []
    seen: set[str] = set()
    for i, c in enumerate(data.get("categories") or []):
        key = f"categories[{i}]"
        _expect(
            isinstance(c, dict) and isinstance(c.get("code"), str), key, "a mapping with code", c
        )
        _expect(c["code"] not in seen, f"{key}.code", "a unique code", c["code"])
        seen.add(c["code"])
        prio = c.get("priority", "P4")
        _expect(prio in PRIORITIES, f"{key}.priority", "one of P1..P4", prio)
        categories.append(
            Category(
                code=c["code"],
                priority=prio,
                names=_names(f"{key}.names", c.get("names")),
                keywords=_str_list(f"{key}.keywords", c.get("keywords") or []),
            )
        )
    _expect(bool(categories), "categories", "at least one category", [])
    _expect("other" in seen, "categories", "a category with code 'other'", sorted(seen))
    departments = []
    for i, d in enumerate(data.get("departments") or []):
        key = f"departments[{i}]"
        _expect(
            isinstance(d, dict) and isinstance(d.get("code"), str), key, "a mapping with code", d
        )
        on_call = _str_list(f"{key}.on_call", d.get("on_call") or [])
        for number in on_call:
            _expect(
                re.fullmatch(r"\+[1-9]\d{6,14}", number) is not None,
                f"{key}.on_call",
                "E.164 numbers such as +886912345678",
                number,
            )
        departments.append(
            Department(
                code=d["code"],
                names=_names(f"{key}.names", d.get("names")),
                email=d.get("email"),
                on_call=on_call,
            )
        )
    dept_codes = {d.code for d in departments}
    _expect(
        "customer_service" in dept_codes,
        "departments",
        "a 'customer_service' department",
        sorted(dept_codes),
    )
    profiles = {}
    for name, p in (data.get("sla_profiles") or {}).items():
        key = f"sla_profiles.{name}"
        _expect(isinstance(p, dict), key, "a mapping", p)
        for k in ("first_response_minutes", "resolution_minutes"):
            _expect(
                isinstance(p.get(k), int) and p[k] > 0, f"{key}.{k}", "a positive integer", p.get(k)
            )
        profiles[name] = SlaProfile(
            name,
            p["first_response_minutes"],
            p["resolution_minutes"],
            bool(p.get("business_time", True)),
        )
    rules = []
    for i, r in enumerate(data.get("routing_rules") or []):
        key = f"routing_rules[{i}]"
        _expect(
            isinstance(r, dict) and isinstance(r.get("name"), str), key, "a mapping with name", r
        )
        when = r.get("when") or {}
        then = r.get("then") or {}
        allowed = {"category", "keywords", "channel", "building", "priority", "hours"}
        _expect(set(when) <= allowed, f"{key}.when", f"keys from {sorted(allowed)}", sorted(when))
        if "category" in when:
            for c in when["category"]:
                _expect(c in seen, f"{key}.when.category", f"known categories {sorted(seen)}", c)
        if "hours" in when:
            _expect(
                when["hours"] in ("business", "after_hours"),
                f"{key}.when.hours",
                "business or after_hours",
                when["hours"],
            )
        _expect(
            then.get("department") in dept_codes,
            f"{key}.then.department",
            f"one of {sorted(dept_codes)}",
            then.get("department"),
        )
        if "priority" in then:
            _expect(
                then["priority"] in PRIORITIES,
                f"{key}.then.priority",
                "one of P1..P4",
                then["priority"],
            )
        if "sla_profile" in then:
            _expect(
                then["sla_profile"] in profiles,
                f"{key}.then.sla_profile",
                f"one of {sorted(profiles)}",
                then["sla_profile"],
            )
        for n in then.get("notify") or []:
            _expect(
                n in dept_codes, f"{key}.then.notify", f"departments from {sorted(dept_codes)}", n
            )
        rules.append(RoutingRule(r["name"], dict(when), dict(then)))
    pk = {}
    for prio, words in (data.get("priority_keywords") or {}).items():
        _expect(prio in PRIORITIES, "priority_keywords", "keys P1..P4", prio)
        pk[prio] = _str_list(f"priority_keywords.{prio}", words)
    return HotlineConfig(
        company_names=_names("company.name", company.get("name")),
        ticket_prefix=prefix,
        phone_region=region,
        timezone=tz,
        holiday_country=country,
        holiday_subdivision=hol.get("subdivision"),
        business_hours=hours,
        quiet_hours=_span("quiet_hours", data.get("quiet_hours")),
        default_language=default_language,
        languages=enabled,
        negations_zh=_str_list("negations.zh", neg.get("zh") or []),
        negations_en=_str_list("negations.en", neg.get("en") or []),
        categories=tuple(categories),
        priority_keywords=pk,
        departments=tuple(departments),
        sla_profiles=profiles,
        routing_rules=tuple(rules),
        callbacks=dict(data.get("callbacks") or {}),
        voice=dict(data.get("voice") or {}),
        mail=dict(data.get("mail") or {}),
        raw=data,
    )


def load_config(path: str | os.PathLike[str] | None = None) -> HotlineConfig:
    chosen = Path(path or os.environ.get("HOTLINE_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"HOTLINE_CONFIG: expected a readable YAML file, got {str(chosen)!r} ({exc.strerror})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"HOTLINE_CONFIG: expected valid YAML in {chosen}, {str(exc).splitlines()[0]}"
        ) from None
    return parse_config(data)


def _env(name: str, default: str | None = None) -> str | None:
    """A setting from the environment, or from the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE: expected a readable file, got {file_name!r} ({exc.strerror})"
            ) from None
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Deployment settings from the environment (ARCHITECTURE.md, public contract)."""

    database_url: str
    redis_url: str | None
    secret_key: str
    public_base_url: str
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    webhook_auth_token: str
    twilio_number: str | None
    imap_urls: tuple[str, ...]
    smtp_url: str | None
    mail_from: str
    smtpd_host: str
    smtpd_port: int
    data_dir: Path
    config: HotlineConfig

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


def _local_secret(data_dir: Path, name: str) -> str:
    """A secret generated once per installation, so embedded defaults are never a shared constant."""
    path = data_dir / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def load_settings(env_file: str | None = ".env") -> Settings:
    if env_file:
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)
    data_dir = Path(_env("HOTLINE_DATA_DIR", "var") or "var").resolve()
    database_url = _env("DATABASE_URL") or f"sqlite:///{data_dir / 'hotline.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://") :]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    _expect(
        database_url.startswith(("sqlite:", "postgresql+psycopg:")),
        "DATABASE_URL",
        "a sqlite:/// or postgresql:// URL",
        database_url.split("@")[-1],
    )
    redis_url = _env("REDIS_URL")
    if redis_url:
        _expect(
            redis_url.startswith(("redis://", "rediss://", "unix://")),
            "REDIS_URL",
            "a redis://, rediss:// or unix:// URL",
            redis_url,
        )
    port_raw = _env("SMTPD_PORT", "8025") or "8025"
    _expect(
        port_raw.isdigit() and 0 < int(port_raw) < 65536,
        "SMTPD_PORT",
        "a TCP port number",
        port_raw,
    )
    imap = tuple(u.strip() for u in (_env("IMAP_URL") or "").split(",") if u.strip())
    for u in imap:
        _expect(
            u.startswith(("imap://", "imaps://")),
            "IMAP_URL",
            "imaps://user:password@host:port/FOLDER",
            u.split("@")[-1],
        )
    smtp_url = _env("SMTP_URL")
    if smtp_url:
        _expect(
            smtp_url.startswith(("smtp://", "smtps://")),
            "SMTP_URL",
            "an smtp:// or smtps:// URL",
            smtp_url.split("@")[-1],
        )
    public = (_env("PUBLIC_BASE_URL", "http://127.0.0.1:5000") or "").rstrip("/")
    _expect(
        public.startswith(("http://", "https://")), "PUBLIC_BASE_URL", "an http(s):// URL", public
    )
    mail_from = _env("MAIL_FROM", "complaints@hotline.localhost") or ""
    _expect("@" in mail_from, "MAIL_FROM", "an email address", mail_from)
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=_env("SECRET_KEY") or _local_secret(data_dir, "secret_key"),
        public_base_url=public,
        twilio_account_sid=_env("TWILIO_ACCOUNT_SID"),
        twilio_auth_token=_env("TWILIO_AUTH_TOKEN"),
        webhook_auth_token=_env("TWILIO_AUTH_TOKEN")
        or _local_secret(data_dir, "local_twilio_auth_token"),
        twilio_number=_env("TWILIO_NUMBER"),
        imap_urls=imap,
        smtp_url=smtp_url,
        mail_from=mail_from,
        smtpd_host=_env("SMTPD_HOST", "127.0.0.1") or "127.0.0.1",
        smtpd_port=int(port_raw),
        data_dir=data_dir,
        config=load_config(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return load_settings()
