"""Links a resident opens from an email without signing in (a survey answer, stopping planned-works
notices): the payload and a short HMAC of it with SECRET_KEY, so a link can only say what it was
made for and cannot be forged or edited."""

from __future__ import annotations

import base64
import hashlib
import hmac


def link_mac(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed(secret: str, payload: str) -> str:
    return f"{payload}.{link_mac(secret, payload)}"


def verified(secret: str, token: str) -> str | None:
    """The payload of a token made by `signed`, or None when it was not made with `secret`."""
    payload, _, mac = token.rpartition(".")
    if not payload or not hmac.compare_digest(link_mac(secret, payload), mac):
        return None
    return payload
