"""X-Twilio-Signature checking against the URL Twilio actually requested.

Werkzeug's `request.url` decodes percent-escapes (an IRI), which breaks the HMAC for any URL with
escaped characters, and behind a proxy the scheme and host differ from what Twilio saw. So the
signed URL is rebuilt from PUBLIC_BASE_URL and the raw request target.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from twilio.request_validator import RequestValidator

_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def raw_target(environ: dict[str, Any]) -> str:
    """The path and query exactly as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if raw.startswith(("http://", "https://")):
            parts = urlsplit(raw)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    quoted = quote(path.encode("latin-1"), safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING", "")
    return quoted + (f"?{query}" if query else "")


def signed_url(public_base_url: str, environ: dict[str, Any]) -> str:
    return public_base_url.rstrip("/") + raw_target(environ)


def is_valid(token: str, url: str, params: Any, signature: str | None) -> bool:
    if not signature or not token:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


def sign(token: str, url: str, params: dict[str, str]) -> str:
    """The signature Twilio would send for a POST of `params` to `url`."""
    return str(RequestValidator(token).compute_signature(url, params))
