"""The outbound dialer: Twilio's REST API when TWILIO_* is set, else a local dialer that records the
call for the simulator (`hotline call --answer`).

Every outbound call goes through `place_call` (resident callbacks) or `dial` (paging), and every
Twilio client is made by `twilio_client`, the one choke point tests plug a fake HTTP client into.
Calls respect the account's calls-per-second limit across all workers through a token bucket in
Redis, and a 429 cools every worker down. A call whose REST response was lost is looked up before it
is placed again, so a resident is never rung twice for one attempt.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.rest import Client

from intake.config import Settings
from intake.models import Call, CallbackAttempt, utcnow

log = logging.getLogger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
WRONG_NUMBER_CODES = frozenset({21211, 21214, 21217, 21215, 13223, 13224})
PLACING_MARK = "placing: REST request sent, answer not yet recorded"
BUCKET_KEY = "hotline:dialer:bucket"
COOLDOWN_KEY = "hotline:dialer:cooldown"
MAX_BUCKET_WAIT_SECONDS = 30.0

_http_client: HttpClient | None = None

# KEYS[1] bucket, ARGV rate (tokens/s), capacity. Returns milliseconds to wait (0 = token taken).
_TAKE_TOKEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
local cool = redis.call('PTTL', KEYS[2])
if cool > 0 and wait == 0 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens + 1))
  wait = cool
end
return wait
"""


class DialError(Exception):
    """A call could not be placed. `permanent` errors are never retried; `outcome` names why."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        outcome: str = "failed",
        retry_after: float | None = None,
        lost: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.outcome = outcome
        self.retry_after = retry_after
        self.lost = lost


@dataclass(frozen=True)
class RateLimit:
    calls_per_second: float = 1.0
    burst: float = 1.0


def use_http_client(client: HttpClient | None) -> None:
    """Make every Twilio client in this process use `client` (tests: a fake Twilio)."""
    global _http_client
    _http_client = client


def twilio_client(settings: Settings, http_client: HttpClient | None = None) -> Client:
    if not settings.twilio_configured:
        raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set")
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=http_client or _http_client,
        environment={},
    )


def rate_limit(settings: Settings) -> RateLimit:
    voice = settings.config.voice
    return RateLimit(calls_per_second=voice.calls_per_second, burst=voice.burst)


def take_token(
    connection: Redis, limit: RateLimit, *, max_wait: float = MAX_BUCKET_WAIT_SECONDS
) -> None:
    """Block until the shared bucket grants one call, or raise a retryable DialError."""
    deadline = time.monotonic() + max_wait
    while True:
        wait_ms = int(
            connection.eval(
                _TAKE_TOKEN, 2, BUCKET_KEY, COOLDOWN_KEY, limit.calls_per_second, limit.burst
            )
        )
        if wait_ms <= 0:
            return
        if time.monotonic() + wait_ms / 1000 > deadline:
            raise DialError(
                "the calls-per-second budget is exhausted",
                permanent=False,
                retry_after=wait_ms / 1000,
            )
        time.sleep(wait_ms / 1000)


def cool_down(connection: Redis, seconds: float) -> None:
    """After a 429 every worker waits: the bucket refuses tokens while the key lives."""
    connection.set(COOLDOWN_KEY, "1", px=max(1, int(seconds * 1000)))


def _local_sid(key: str) -> str:
    return "CA" + hashlib.sha256(f"local:{key}".encode()).hexdigest()[:32]


def _record_call(
    session: Session,
    sid: str,
    *,
    settings: Settings,
    to: str,
    url: str,
    status_callback: str,
    purpose: str,
    callback_id: int | None,
    local: bool,
) -> Call:
    with session.no_autoflush:  # a batch of callbacks flushes its calls together, at the end
        call = session.scalar(select(Call).where(Call.call_sid == sid))
    if call is None:
        call = Call(call_sid=sid, direction="outbound-api", status="queued", started_at=utcnow())
        session.add(call)
    call.direction = "outbound-api"
    call.from_number = settings.twilio_number
    call.to_number = to
    call.purpose = purpose
    call.callback_id = callback_id
    meta = dict(call.meta or {})
    meta.update({"url": url, "status_callback": status_callback})
    if local:
        meta["local"] = True
    call.meta = meta
    return call


def fetch_call_status(settings: Settings, sid: str) -> tuple[str, str | None] | None:
    """Twilio's word on a call whose status callback never reached us: its status and who
    answered, ("failed", None) when Twilio has no such call, None when Twilio cannot be asked now."""
    try:
        call = twilio_client(settings).calls(sid).fetch()
    except TwilioRestException as exc:
        return ("failed", None) if exc.status == 404 else None
    except (TwilioException, OSError) as exc:
        log.warning("could not ask Twilio about call %s: %s", sid, exc)
        return None
    except Exception as exc:
        import requests

        if isinstance(exc, requests.RequestException):
            log.warning("could not ask Twilio about call %s: %s", sid, exc)
            return None
        raise
    return str(call.status), call.answered_by


def classify_rest_error(exc: TwilioRestException) -> DialError:
    status = int(exc.status or 0)
    code = int(exc.code) if isinstance(exc.code, int) or str(exc.code).isdigit() else None
    text = f"Twilio {status} {code or ''}: {exc.msg}".replace("  ", " ")
    if code in WRONG_NUMBER_CODES:
        return DialError(text, permanent=True, outcome="wrong_number")
    if status == 429 or code == 20429:
        return DialError(text, permanent=False, retry_after=5.0)
    if status >= 500 or status == 0:
        return DialError(text, permanent=False)
    return DialError(text, permanent=True, outcome="failed")


def find_placed_call(client: Client, *, to: str, from_: str | None, since: datetime) -> str | None:
    """The sid of an outbound call to `to` created at or after `since`, if Twilio has one.

    Twilio's Call resource does not echo the TwiML URL back, so the match is on the number, our
    caller id, the direction and the creation time: one attempt owns its number for that span.
    """
    kwargs: dict[str, object] = {"to": to, "limit": 20}
    if from_:
        kwargs["from_"] = from_
    for call in client.calls.list(**kwargs):
        created = call.date_created
        if (
            call.direction == "outbound-api"
            and created is not None
            and created >= since - timedelta(seconds=2)
        ):
            return call.sid
    return None


def dial(
    session: Session,
    settings: Settings,
    *,
    key: str,
    to: str,
    url: str,
    status_callback: str,
    purpose: str,
    callback_id: int | None = None,
    connection: Redis | None = None,
    recover_since: datetime | None = None,
) -> str:
    """Place one call and record its Call row; returns the call sid.

    `recover_since` says an earlier try may have reached Twilio without us hearing back: look the
    call up first and only place it when Twilio has no such call.
    """
    if not settings.twilio_configured:
        sid = _local_sid(key)
        _record_call(
            session,
            sid,
            settings=settings,
            to=to,
            url=url,
            status_callback=status_callback,
            purpose=purpose,
            callback_id=callback_id,
            local=True,
        )
        return sid
    client = twilio_client(settings)
    if recover_since is not None:
        try:
            found = find_placed_call(
                client, to=to, from_=settings.twilio_number, since=recover_since
            )
        except TwilioRestException as exc:
            raise classify_rest_error(exc) from exc
        except (TwilioException, OSError, ConnectionError) as exc:
            raise DialError(f"could not look the call up: {exc}", permanent=False) from exc
        if found:
            log.info("call for %s was placed before its response was lost: %s", key, found)
            _record_call(
                session,
                found,
                settings=settings,
                to=to,
                url=url,
                status_callback=status_callback,
                purpose=purpose,
                callback_id=callback_id,
                local=False,
            )
            return found
    if connection is not None:
        take_token(connection, rate_limit(settings))
    try:
        created = client.calls.create(
            to=to,
            from_=settings.twilio_number,
            url=url,
            status_callback=status_callback,
            status_callback_event=STATUS_EVENTS,
            machine_detection="Enable",
        )
    except TwilioRestException as exc:
        error = classify_rest_error(exc)
        if connection is not None and error.retry_after:
            cool_down(connection, error.retry_after)
        raise error from exc
    except Exception as exc:
        import requests

        if isinstance(exc, requests.RequestException | OSError | TimeoutError):
            raise DialError(
                f"no answer from Twilio ({type(exc).__name__}); the call may exist",
                permanent=False,
                lost=True,
            ) from exc
        raise
    sid = str(created.sid)
    _record_call(
        session,
        sid,
        settings=settings,
        to=to,
        url=url,
        status_callback=status_callback,
        purpose=purpose,
        callback_id=callback_id,
        local=False,
    )
    return sid


def outbound_url(settings: Settings, attempt: CallbackAttempt) -> str:
    return f"{settings.public_base_url.rstrip('/')}/voice/outbound?attempt={attempt.id}"


def status_callback_url(settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/voice/status"


def place_call(
    session: Session,
    settings: Settings,
    *,
    attempt: CallbackAttempt,
    to: str,
    url: str,
    status_callback: str,
    connection: Redis | None = None,
) -> str:
    """Dial a resident for one callback attempt; the attempt row must already be committed.

    Before the REST request the attempt is marked (and committed) as "request sent"; finding that
    mark on entry means a previous try lost its response, so Twilio is asked first.
    """
    if attempt.call_sid:
        return attempt.call_sid
    recovering = attempt.error == PLACING_MARK
    callback = attempt.callback
    if settings.twilio_configured:
        attempt.error = PLACING_MARK
        session.commit()
    sid = dial(
        session,
        settings,
        key=attempt.idempotency_key,
        to=to,
        url=url,
        status_callback=status_callback,
        purpose=callback.purpose if callback else "callback",
        callback_id=attempt.callback_id,
        connection=connection,
        recover_since=attempt.started_at if recovering else None,
    )
    attempt.call_sid = sid
    attempt.status = "dialled"
    attempt.error = None
    if callback is not None:
        callback.current_call_sid = sid
    return sid
