"""Phone numbers and email addresses in the one form the database keeps."""

from __future__ import annotations

import phonenumbers


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
    if not raw or "@" not in raw:
        return None
    local, _, domain = raw.strip().strip("<>").rpartition("@")
    if not local or not domain:
        return None
    return f"{local}@{domain.lower()}".lower()


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
