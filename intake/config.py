"""All configuration in one place, parsed strictly at start-up.

Two sources: the environment (and a `.env` file) for deployment settings and secrets, and a YAML
file (`HOTLINE_CONFIG`, shipped defaults in `default_config.yaml`) for the centre's own data.
Every section of the YAML file is a pydantic model below, holding its defaults; unknown keys and
wrong types are refused. A bad value raises `ConfigError` whose message is one line naming the key
and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from intake.constants import (
    CHANNELS,
    LANGUAGES,
    PRIORITIES,
    SPOKEN_LANGUAGES,
    WEEKDAYS,
)

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
# Twilio's <Say> and speech-recognition codes a spoken language may use.
SAY_LANGUAGES = ("cmn-TW", "cmn-CN", "yue-HK", "zh-TW", "zh-CN", "zh-HK", "en-US", "en-GB", "en-AU")
SPEECH_LANGUAGES = (
    "cmn-Hant-TW",
    "cmn-Hans-CN",
    "yue-Hant-HK",
    "zh",
    "zh-TW",
    "en-US",
    "en-GB",
    "en-AU",
)
DEFAULT_DISPOSITIONS = (
    "resolved_on_call",
    "ticket_filed",
    "transferred",
    "information_given",
    "wrong_number",
)
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A configuration value is wrong; str() is the one line shown to the user."""


class Expected(ValueError):
    """Raised by a validator: what was expected. `key` names the wrong thing when it is not the
    validated field itself (".name" below it, or a whole key such as "departments"); `value` is
    what was found there."""

    def __init__(self, expected: str, *, key: str = "", value: Any = ...) -> None:
        super().__init__(expected)
        self.expected, self.key, self.value = expected, key, value


def _expect(cond: bool, key: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


# --- value types --------------------------------------------------------------------------------


def _span(value: Any) -> tuple[time, time] | None:
    if value in (None, "", "closed"):
        return None
    m = _SPAN.match(value) if isinstance(value, str) else None
    if m is None:
        raise Expected("'HH:MM-HH:MM' or null")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


def _zone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise Expected("an IANA time zone such as Asia/Taipei") from None


def _names(value: Any) -> dict[str, str]:
    if not (isinstance(value, dict) and all(lang in value for lang in LANGUAGES)):
        raise Expected("a mapping with zh-Hant, zh-Hans and en")
    return {str(k): str(v) for k, v in value.items()}


def _one_of(choices: tuple[str, ...], expected: str | None = None) -> AfterValidator:
    def check(value: str) -> str:
        if value not in choices:
            raise Expected(expected or f"one of {choices}")
        return value

    return AfterValidator(check)


def _ids(value: Any) -> tuple[str, ...]:
    """One id or a list of them, trimmed and lower-cased (compared case-insensitively)."""
    values = [value] if isinstance(value, str) else (value or [])
    if not isinstance(values, list | tuple | set | frozenset):
        raise Expected("an id or a list of ids")
    return tuple(dict.fromkeys(str(v).strip().lower() for v in values if str(v).strip()))


Span = Annotated[tuple[time, time] | None, PlainValidator(_span)]
TimeZone = Annotated[ZoneInfo, PlainValidator(_zone)]
Names = Annotated[dict[str, str], PlainValidator(_names)]
Word = Annotated[str, Field(min_length=1)]
Words = tuple[Word, ...]
Priority = Annotated[str, _one_of(PRIORITIES, "one of P1..P4")]
Language = Annotated[str, _one_of(LANGUAGES)]
SpokenLanguage = Annotated[str, _one_of(SPOKEN_LANGUAGES)]
Channel = Annotated[str, _one_of(CHANNELS)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _e164(value: str) -> str:
    if _E164.fullmatch(value) is None:
        raise Expected("E.164 numbers such as +886912345678")
    return value


# --- sections -----------------------------------------------------------------------------------


class Section(BaseModel):
    """A mapping of the YAML file: known keys only, each typed, defaults here."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1)
                    hint = f"did you mean {close[0]}?" if close else f"one of {sorted(known)}"
                    raise Expected(f"a known key ({hint})", key=f".{key}", value=key)
        return data

    def get(self, name: str, default: Any = None) -> Any:
        """Transitional dict-style read for `voice/webhooks.py` and `voice/paging.py`, which are
        being rewritten; everything else reads attributes."""
        return getattr(self, name, default)


def _prefix(value: str) -> str:
    if re.fullmatch(r"[A-Z]{1,6}", value) is None:
        raise Expected("1-6 capital letters")
    return value


def _region(value: str) -> str:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise Expected("an ISO 3166 region known to phonenumbers")
    return value


class CompanySection(Section):
    name: Names
    ticket_prefix: Annotated[str, AfterValidator(_prefix)] = "HL"
    phone_region: Annotated[str, AfterValidator(_region)] = "TW"


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    import holidays as holidays_lib

    if value not in holidays_lib.list_supported_countries():
        raise Expected("a country code supported by the holidays package")
    return value


class HolidaysSection(Section):
    """Public holidays from the `holidays` package; no country: none."""

    country: Annotated[str | None, AfterValidator(_country)] = None
    subdivision: str | None = None


class BusinessHoursSection(Section):
    """Opening hours per weekday, 'HH:MM-HH:MM' (24:00 for midnight); null or missing: closed."""

    mon: Span = None
    tue: Span = None
    wed: Span = None
    thu: Span = None
    fri: Span = None
    sat: Span = None
    sun: Span = None


class LanguagesSection(Section):
    default: Language = "zh-Hant"
    enabled: tuple[Language, ...] = LANGUAGES


class NegationsSection(Section):
    """Words that, just before a keyword, mean it is not the case ("no longer leaking")."""

    zh: Words = ()
    en: Words = ()


class Category(Section):
    code: str
    priority: Priority = "P4"
    names: Names
    keywords: Words = ()


class Department(Section):
    code: str
    names: Names
    email: str | None = None
    on_call: tuple[Annotated[str, AfterValidator(_e164)], ...] = ()


class SlaProfile(Section):
    """Targets in minutes; business_time: counted in opening hours only."""

    first_response_minutes: PositiveInt
    resolution_minutes: PositiveInt
    business_time: bool = True


class RuleConditions(Section):
    """A routing rule's `when`: every condition given must hold; none given matches all."""

    category: tuple[str, ...] | None = None
    keywords: Words | None = None
    channel: tuple[Channel, ...] | None = None
    building: tuple[str, ...] | None = None
    priority: tuple[Priority, ...] | None = None
    hours: Literal["business", "after_hours"] | None = None


class RuleActions(Section):
    """A routing rule's `then`: where the ticket goes and who hears about it."""

    department: str
    priority: Priority | None = None
    sla_profile: str | None = None
    notify: tuple[str, ...] = ()


class RoutingRule(Section):
    name: str
    names: dict[str, str] = Field(default_factory=dict)
    when: RuleConditions = Field(default_factory=RuleConditions)
    then: RuleActions

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("when") is None:
            data = {**data, "when": {}}
        if isinstance(data, dict) and "names" in data:
            data = {**data, "names": _names_at(data["names"], ".names")}
        return data

    def title(self, language: str) -> str:
        """The rule's name for people, in `language` (its code when none was configured)."""
        return self.names.get(language, self.name)


def _names_at(value: Any, key: str) -> dict[str, str]:
    try:
        return _names(value)
    except Expected as exc:
        raise Expected(exc.expected, key=key, value=value) from None


class CallbacksSection(Section):
    """Calling residents back: missed calls, follow-ups after "fixed", and the survey."""

    # A hang-up within this long of an earlier one joins the same missed-call callback.
    missed_call_window_minutes: PositiveInt = 120
    max_attempts: PositiveInt = 3
    retry_spacing_minutes: PositiveInt = 30
    follow_up_delay_hours: Annotated[float, Field(ge=0)] = 24
    retry_after_voicemail: bool = True
    # After "fixed", the satisfaction question in the same call.
    survey: bool = True
    # A resolved ticket closes this long after the follow-up without objection.
    close_after_days: PositiveFloat = 7
    # Follow-up email links stop answering after this many days.
    follow_up_link_days: PositiveFloat = 14


class NotificationsSection(Section):
    """Who hears about a routed ticket: P4 waits for a digest, P1 pages the on-call chain."""

    digest_priorities: tuple[Priority, ...] = ("P4",)
    page_priorities: tuple[Priority, ...] = ("P1",)
    page_ack_timeout_seconds: PositiveInt = 120
    # None: `sla.manager_after_minutes` (see `HotlineConfig.page_manager_after_minutes`).
    page_manager_after_minutes: PositiveFloat | None = None


class SlaSection(Section):
    # Warn this fraction of a target before it is breached.
    warn_before_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    # Escalate to the project manager this long after the supervisor was told.
    manager_after_minutes: PositiveFloat = 60


class VoiceLanguageSpec(Section):
    say: Annotated[str, _one_of(SAY_LANGUAGES)]
    speech: Annotated[str, _one_of(SPEECH_LANGUAGES)]
    voice: str | None = None


def _with_default_language(value: dict[str, VoiceLanguageSpec]) -> dict[str, VoiceLanguageSpec]:
    if "zh-Hant" not in value:
        raise Expected("an entry for zh-Hant, the default", value=sorted(value))
    return value


DEFAULT_VOICE_LANGUAGES = (
    ("zh-Hant", "cmn-TW", "cmn-Hant-TW"),
    ("yue", "yue-HK", "yue-Hant-HK"),
    ("en", "en-US", "en-US"),
    ("zh-Hans", "cmn-CN", "cmn-Hans-CN"),
)


def _default_voice_languages() -> dict[str, VoiceLanguageSpec]:
    return {
        key: VoiceLanguageSpec(say=say, speech=speech)
        for key, say, speech in DEFAULT_VOICE_LANGUAGES
    }


class DeskSection(Section):
    """The operators' desk (`voice.desk`)."""

    ring_seconds: PositiveInt = 20
    any_language_after_seconds: Annotated[int, Field(ge=0)] = 60
    max_wait_seconds: PositiveInt = 600
    after_max_wait: Literal["voicemail", "callback"] = "voicemail"
    wrap_up_seconds: Annotated[int, Field(ge=0)] = 30
    away_after_missed: PositiveInt = 2
    service_level_seconds: PositiveInt = 20
    short_abandon_seconds: Annotated[int, Field(ge=0)] = 5
    dispositions: tuple[Word, ...] = DEFAULT_DISPOSITIONS
    # Record desk calls (the caller hears the consent phrase first).
    record_calls: Annotated[bool, Field(strict=True)] = False


class VoiceSection(Section):
    # Outbound calls per second across every worker (Twilio's account limit), and the burst
    # allowed (None: the rate, at least one).
    calls_per_second: PositiveFloat = 1.0
    calls_burst: PositiveFloat | None = None
    # Say/speech codes per spoken language.
    languages: Annotated[
        dict[SpokenLanguage, VoiceLanguageSpec], AfterValidator(_with_default_language)
    ] = Field(default_factory=_default_voice_languages)
    # The language menu in order (digit 1 first).
    menu_languages: tuple[SpokenLanguage, ...] = ("zh-Hant", "yue", "en")
    menu_retries: PositiveInt = 3
    record_max_seconds: PositiveInt = 120
    dial_timeout_seconds: PositiveInt = 20
    operator_queue: Word = "operators"
    # On-call numbers are dialled in turn from these departments' on_call lists.
    emergency_departments: tuple[str, ...] = ("engineering", "security")
    # Words that, spoken at the main menu, mean "progress" or "operator" rather than a report.
    speech_intents: dict[Literal["progress", "operator"], Words] = Field(default_factory=dict)
    desk: DeskSection = Field(default_factory=DeskSection)

    @property
    def burst(self) -> float:
        return max(1.0, self.calls_burst if self.calls_burst is not None else self.calls_per_second)


class MailSection(Section):
    # Other addresses of the complaint mailbox the SMTP listener accepts mail for.
    aliases: tuple[Word, ...] = ()
    ack_limit_per_sender_per_hour: Annotated[int, Field(ge=0)] = 3
    storm_limit_per_minute: PositiveInt = 60
    reopen_closed_within_days: Annotated[int, Field(ge=0)] = 30
    # The authserv-id(s) of the mail server in front whose Authentication-Results is believed.
    trusted_authserv_id: Annotated[tuple[str, ...], PlainValidator(_ids)] = ()
    # `hotline smtpd` checks SPF, DKIM and DMARC itself and writes its verdict under authserv_id.
    verify_senders: bool = False
    authserv_id: Annotated[str, AfterValidator(lambda v: v.strip().lower())] = "hotline"
    max_message_bytes: PositiveInt = 25 * MIB
    max_attachment_bytes: PositiveInt = 25 * MIB
    max_total_attachment_bytes: PositiveInt = 50 * MIB
    max_attachments: PositiveInt = 50
    # An IMAP poller that fetched nothing for this long is reported silent.
    silent_after_hours: PositiveFloat = 24.0

    @property
    def own_authserv_id(self) -> str | None:
        """The id our SMTP listener writes its own checks under, when it checks senders."""
        return self.authserv_id if self.verify_senders else None


class IncidentsSection(Section):
    # Suggest declaring an incident after this many similar tickets within this many minutes.
    suggest_after_tickets: PositiveInt = 3
    suggest_within_minutes: PositiveInt = 30
    # Notices by SMS are spread to this rate (Twilio's), at least one every ten seconds.
    sms_per_second: Annotated[float, Field(ge=0.1)] = 10


class ReportsSection(Section):
    repeat_window_days: PositiveInt = 30
    repeat_categories: tuple[str, ...] = ("repair",)


class Open311Section(Section):
    jurisdiction_id: str | None = None
    contact: str = ""


def _days(value: Any) -> int | None:
    if value in ("forever", 0, None):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise Expected("a number of days or forever")


Days = Annotated[int | None, PlainValidator(_days)]


class RetentionSection(Section):
    """Days each kind of personal data is kept (forever: null, 0 or 'forever')."""

    raw_mail: Days = 90
    attachments: Days = 365
    recordings: Days = 90
    transcripts: Days = 365
    outgoing_messages: Days = 365
    call_events: Days = 90
    audit_log: Days = 730


class AlertsSection(Section):
    """Who is told about an outage besides the active admins."""

    emails: tuple[Word, ...] = ()
    phones: tuple[Word, ...] = ()


class ConfigFile(Section):
    """The whole YAML file."""

    company: CompanySection
    timezone: TimeZone = ZoneInfo("Asia/Taipei")
    holidays: HolidaysSection = Field(default_factory=HolidaysSection)
    business_hours: BusinessHoursSection = Field(default_factory=BusinessHoursSection)
    quiet_hours: Span = None
    languages: LanguagesSection = Field(default_factory=LanguagesSection)
    negations: NegationsSection = Field(default_factory=NegationsSection)
    categories: tuple[Category, ...] = ()
    # Priority raised when one of these words appears, whatever the category.
    priority_keywords: dict[Priority, Words] = Field(default_factory=dict)
    departments: tuple[Department, ...] = ()
    sla_profiles: dict[str, SlaProfile] = Field(default_factory=dict)
    # Ordered: the first rule whose every condition holds decides.
    routing_rules: tuple[RoutingRule, ...] = ()
    callbacks: CallbacksSection = Field(default_factory=CallbacksSection)
    notifications: NotificationsSection = Field(default_factory=NotificationsSection)
    sla: SlaSection = Field(default_factory=SlaSection)
    voice: VoiceSection = Field(default_factory=VoiceSection)
    mail: MailSection = Field(default_factory=MailSection)
    incidents: IncidentsSection = Field(default_factory=IncidentsSection)
    reports: ReportsSection = Field(default_factory=ReportsSection)
    open311: Open311Section = Field(default_factory=Open311Section)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        """`section:` with nothing under it (YAML null) means the section's defaults."""
        if not isinstance(data, dict):
            raise Expected("a YAML mapping", key="HOTLINE_CONFIG", value=type(data).__name__)
        keep = {"quiet_hours", "timezone"}
        return {k: v for k, v in data.items() if v is not None or k in keep}

    @model_validator(mode="after")
    def _references(self) -> ConfigFile:
        """Names used in one section exist in the section that defines them."""
        codes = [c.code for c in self.categories]
        for i, code in enumerate(codes):
            _refer(code not in codes[:i], f"categories[{i}].code", "a unique code", code)
        _refer(bool(codes), "categories", "at least one category", [])
        _refer("other" in codes, "categories", "a category with code 'other'", sorted(codes))
        departments = sorted(d.code for d in self.departments)
        _refer(
            "customer_service" in departments,
            "departments",
            "a 'customer_service' department",
            departments,
        )
        for i, rule in enumerate(self.routing_rules):
            key = f"routing_rules[{i}]"
            for code in rule.when.category or ():
                _refer(
                    code in codes, f"{key}.when.category", f"known categories {sorted(codes)}", code
                )
            dept = rule.then.department
            _refer(dept in departments, f"{key}.then.department", f"one of {departments}", dept)
            profile_name = rule.then.sla_profile
            if profile_name is not None:
                _refer(
                    profile_name in self.sla_profiles,
                    f"{key}.then.sla_profile",
                    f"one of {sorted(self.sla_profiles)}",
                    profile_name,
                )
            for code in rule.then.notify:
                _refer(
                    code in departments,
                    f"{key}.then.notify",
                    f"departments from {departments}",
                    code,
                )
        for i, code in enumerate(self.voice.emergency_departments):
            _refer(
                code in departments,
                f"voice.emergency_departments[{i}]",
                f"one of {departments}",
                code,
            )
        for i, code in enumerate(self.reports.repeat_categories):
            _refer(
                code in codes, f"reports.repeat_categories[{i}]", f"one of {sorted(codes)}", code
            )
        return self


def _refer(cond: bool, key: str, expected: str, value: Any) -> None:
    if not cond:
        raise Expected(expected, key=key, value=value)


# --- the configuration the code reads -----------------------------------------------------------


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
    callbacks: CallbacksSection
    notifications: NotificationsSection
    sla: SlaSection
    voice: VoiceSection
    mail: MailSection
    incidents: IncidentsSection
    reports: ReportsSection
    open311: Open311Section
    retention: RetentionSection
    alerts: AlertsSection
    # The YAML as read, for `hotline routing test --rules`, which swaps in other rules.
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def rule(self, name: str) -> RoutingRule | None:
        return next((r for r in self.routing_rules if r.name == name), None)

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def department(self, code: str) -> Department | None:
        return next((d for d in self.departments if d.code == code), None)

    @property
    def customer_service(self) -> Department:
        """The catch-all department, which every configuration has (checked at start-up)."""
        return next(d for d in self.departments if d.code == "customer_service")

    def company(self, language: str) -> str:
        return self.company_names.get(language) or self.company_names[self.default_language]

    @property
    def page_manager_after_minutes(self) -> float:
        """When nobody on call answers a page, the manager is told this long after the
        supervisor: `notifications.page_manager_after_minutes`, else `sla.manager_after_minutes`."""
        given = self.notifications.page_manager_after_minutes
        return given if given is not None else self.sla.manager_after_minutes


_EXPECTED_FOR_TYPE = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "missing": "a value",
}


def _key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if part == "[key]":
            continue
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def config_error(exc: ValidationError) -> ConfigError:
    """The first of pydantic's errors as our one line: `key: expected X, got Y`."""
    error = exc.errors(include_url=False)[0]
    key = _key(tuple(error["loc"]))
    value: Any = error.get("input")
    reason = (error.get("ctx") or {}).get("error")
    kind = error["type"]
    if isinstance(reason, Expected):
        expected = reason.expected
        if reason.key.startswith("."):
            key = key + reason.key if key else reason.key[1:]
        elif reason.key:
            key = reason.key
        value = value if reason.value is ... else reason.value
    elif kind in _EXPECTED_FOR_TYPE:
        expected = _EXPECTED_FOR_TYPE[kind]
    elif kind == "literal_error":
        expected = f"one of {error['ctx']['expected']}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        expected = error["msg"].removeprefix("Input should be ").replace("equal to", "at least")
        expected = f"a number {expected}"
    elif kind == "extra_forbidden":
        expected = "a known key"
    else:
        expected = error["msg"][0].lower() + error["msg"][1:]
    if kind == "missing":
        return ConfigError(f"{key}: expected {expected}, got nothing")
    return ConfigError(f"{key}: expected {expected}, got {value!r}")


def parse_config(data: Any) -> HotlineConfig:
    """The configuration from a parsed YAML document; `ConfigError` names the first bad key."""
    try:
        parsed = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc) from None
    hours = parsed.business_hours
    return HotlineConfig(
        company_names=parsed.company.name,
        ticket_prefix=parsed.company.ticket_prefix,
        phone_region=parsed.company.phone_region,
        timezone=parsed.timezone,
        holiday_country=parsed.holidays.country,
        holiday_subdivision=parsed.holidays.subdivision,
        business_hours={i: getattr(hours, day) for i, day in enumerate(WEEKDAYS)},
        quiet_hours=parsed.quiet_hours,
        default_language=parsed.languages.default,
        languages=parsed.languages.enabled,
        negations_zh=parsed.negations.zh,
        negations_en=parsed.negations.en,
        categories=parsed.categories,
        priority_keywords=dict(parsed.priority_keywords),
        departments=parsed.departments,
        sla_profiles=parsed.sla_profiles,
        routing_rules=parsed.routing_rules,
        callbacks=parsed.callbacks,
        notifications=parsed.notifications,
        sla=parsed.sla,
        voice=parsed.voice,
        mail=parsed.mail,
        incidents=parsed.incidents,
        reports=parsed.reports,
        open311=parsed.open311,
        retention=parsed.retention,
        alerts=parsed.alerts,
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
    # Operations (docs/operations.md): who may read /metrics, and the log line format.
    metrics_token: str | None = None
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    log_format: str = "auto"
    # The operators' browser softphone signs Access Tokens with an API key (never the auth token).
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = None

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def softphone_configured(self) -> bool:
        return bool(
            self.twilio_account_sid and self.twilio_api_key_sid and self.twilio_api_key_secret
        )


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
        from intake.redis_client import SENTINEL_SCHEMES, URL_SCHEMES, parse_sentinel_url

        _expect(
            redis_url.startswith(URL_SCHEMES),
            "REDIS_URL",
            "a redis://, rediss://, unix:// or redis+sentinel://host:26379,host2:26379/SERVICE URL",
            redis_url.split("@")[-1],
        )
        if redis_url.startswith(SENTINEL_SCHEMES):
            try:
                parse_sentinel_url(redis_url)
            except ValueError as exc:
                raise ConfigError(f"REDIS_URL: {exc}, got {redis_url.split('@')[-1]!r}") from None
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
    allow = tuple(
        a.strip() for a in (_env("METRICS_ALLOW", "127.0.0.1/32,::1/128") or "").split(",")
    )
    for net in filter(None, allow):
        _expect(_is_network(net), "METRICS_ALLOW", "comma-separated addresses or CIDR ranges", net)
    log_format = (_env("LOG_FORMAT", "auto") or "auto").lower()
    _expect(log_format in ("auto", "json", "text"), "LOG_FORMAT", "auto, json or text", log_format)
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
        metrics_token=_env("METRICS_TOKEN"),
        metrics_allow=tuple(filter(None, allow)),
        log_format=log_format,
        twilio_api_key_sid=_env("TWILIO_API_KEY_SID"),
        twilio_api_key_secret=_env("TWILIO_API_KEY_SECRET"),
    )


def _is_network(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return load_settings()
