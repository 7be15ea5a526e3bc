"""Phone numbers and email addresses in the one form the database keeps."""

from __future__ import annotations

import re

import phonenumbers

MAX_EMAIL_CHARS = 254
MAX_LOCAL_CHARS = 64
MAX_NAME_CHARS = 80
MAX_NAME_WORDS = 8
# RFC 5322 dot-atom (plus non-ASCII letters, RFC 6531): no quotes, spaces, commas, brackets
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")
_DOMAIN_LIKE = re.compile(r"\b[\w-]+\.(?:com|net|org|info|biz|io|ly|co|me|xyz|top|click|link)\b")
_NAME_FORBIDDEN = set('<>@:;/\\[]{}|="')


def normalize_phone(raw: str | None, region: str) -> str | None:
    """E.164, or None when the string is not a plausible number (anonymous, 'client:...', garbage)."""
    if not raw:
        return None
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str | None) -> str | None:
    """One syntactically valid mailbox (`local@domain`, dot-atom local part, a domain of valid
    labels with a dot), lower-cased; anything else (a list, a quoted local part, spaces, junk) is
    None. Optional angle brackets around the whole address are dropped."""
    if not raw:
        return None
    value = raw.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if len(value) > MAX_EMAIL_CHARS or value.count("@") != 1:
        return None
    local, _, domain = value.partition("@")
    if len(local) > MAX_LOCAL_CHARS or not _LOCAL.fullmatch(local):
        return None
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return f"{local}@{'.'.join(labels)}".lower()


_NO_SMS = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
)


def can_receive_sms(phone: str) -> bool:
    """False for an E.164 number known not to take text messages (a landline, a service number);
    True for a mobile and for a number whose kind the numbering plan does not tell."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(parsed) not in _NO_SMS


def plausible_name(raw: str | None) -> str | None:
    """The display name when it looks like a person's name, else None: it may be printed in a
    greeting ("Dear …"), so a link, an address, a run of digits or a paragraph never is."""
    if not raw:
        return None
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME_CHARS:
        return None
    lowered = name.lower()
    if "@" in name or "://" in lowered or "www." in lowered or _DOMAIN_LIKE.search(lowered):
        return None
    if any(not ch.isprintable() or ch in _NAME_FORBIDDEN for ch in name):
        return None
    if sum(ch.isdigit() for ch in name) > 2:
        return None
    if not any(ch.isalpha() for ch in name) or len(name.split()) > MAX_NAME_WORDS:
        return None
    return name
