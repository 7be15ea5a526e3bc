"""How a refused SMS is written into `OutgoingMessage.error`, and read back.

The worker writes Twilio's HTTP status and error code first ("Twilio 400 21211: …"), so the
console can say in words why a message was refused (an invalid number, a resident who replied
STOP) without a column of its own, and one module owns both sides of that format.
"""

from __future__ import annotations

import re

_WRITTEN = re.compile(r"^Twilio \d{3} (\d+):")


def describe(status: int | None, code: int | None, message: str) -> str:
    """The stored error of a refusal: Twilio's status, its error code when it gave one, its words."""
    return f"Twilio {status} {code or ''}: {message}".replace("  ", " ")


def refusal_code(error: str | None) -> int | None:
    """Twilio's error code of a stored refusal (21211, 21610, …), None for any other error."""
    found = _WRITTEN.match(error or "")
    return int(found.group(1)) if found else None
