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
