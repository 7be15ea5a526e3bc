"""X-Twilio-Signature checking against the URL Twilio actually requested.

Werkzeug's `request.url` decodes percent-escapes (an IRI), which breaks the HMAC for any URL with
escaped characters, and behind a proxy the scheme and host differ from what Twilio saw. So the
signed URL is rebuilt from PUBLIC_BASE_URL and the raw request target.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Response, request
from redis import Redis
from redis.exceptions import RedisError
from twilio.request_validator import RequestValidator

from intake import metrics, rejections
from intake.clock import utcnow
from intake.redis_client import connect

_log = logging.getLogger(__name__)

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


@lru_cache(maxsize=4)
def _counter(redis_url: str) -> Redis:
    # Short timeouts: a flood of forged requests must not wait on a Redis that is down.
    return connect(redis_url, socket_timeout=1, socket_connect_timeout=1)


def count_rejection(redis_url: str | None) -> None:
    """Counts a webhook refused for its signature: this process's metric, and the count shared by
    every web process that the alert check reads (`intake.rejections`)."""
    if metrics.ENABLED:
        metrics.SIGNATURE_FAILURES.inc()
    if not redis_url:
        return
    try:
        rejections.note(_counter(redis_url), utcnow())
    except RedisError as exc:
        _log.warning("could not count a refused webhook in Redis: %s", exc)


def refuse_unsigned(
    public_base_url: str, token: str, log: logging.Logger, redis_url: str | None = None
) -> Response | None:
    """For a blueprint's before_request: a 403 (logged to `log` and counted) unless the request
    carries Twilio's signature of it; None lets it through."""
    url = signed_url(public_base_url, request.environ)
    params = request.form if request.method == "POST" else {}
    if is_valid(token, url, params, request.headers.get("X-Twilio-Signature")):
        return None
    log.warning("rejected a voice webhook with a missing or wrong signature: %s", url)
    count_rejection(redis_url)
    return Response("missing or wrong X-Twilio-Signature\n", status=403, mimetype="text/plain")
