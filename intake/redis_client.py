"""The one place a Redis client is made from `REDIS_URL`, for the web, the workers, the scheduler, the
pollers and the dialer.

Besides redis-py's own `redis://`, `rediss://` and `unix://` URLs, Redis behind Sentinel:
`redis+sentinel://[:password@]host:26379,host2:26379/SERVICE[/DB][?sentinel_password=…]`. The client
asks the sentinels which server is the master of SERVICE and asks again after a failover (a
connection error on the old master); `rediss+sentinel://` speaks TLS to the master.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

from redis import Redis
from redis.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
URL_SCHEMES = ("redis://", "rediss://", "unix://", *SENTINEL_SCHEMES)
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    sentinel_password: str | None
    tls: bool


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Reads a `redis+sentinel://` URL; ValueError names what is wrong."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        password = unquote(userinfo.partition(":")[2]) or None
    sentinels = []
    for part in filter(None, netloc.split(",")):
        host, _, port = part.rpartition(":") if part.count(":") == 1 else (part, "", "")
        if not port.isdigit() and port:
            raise ValueError(f"sentinel port {port!r} is not a number")
        sentinels.append((host or part, int(port) if port else DEFAULT_SENTINEL_PORT))
    if not sentinels:
        raise ValueError("no sentinel host:port given")
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise ValueError("no service name (the master's name in Sentinel) given")
    db = segments[1] if len(segments) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    options = parse_qs(query)
    return SentinelAddress(
        sentinels=tuple(sentinels),
        service=unquote(segments[0]),
        db=int(db),
        password=password,
        sentinel_password=next(iter(options.get("sentinel_password") or []), None),
        tls=scheme == "rediss+sentinel",
    )


def connect(url: str, **options: Any) -> Redis:
    """A new client for `url`; `options` are redis-py's (timeouts, health checks)."""
    if not url.startswith(SENTINEL_SCHEMES):
        return Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    sentinel_options = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    if address.sentinel_password:
        sentinel_options["password"] = address.sentinel_password
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_options, **options)
    master_options: dict[str, Any] = {"db": address.db, "password": address.password}
    if address.tls:
        master_options["ssl"] = True
    return sentinel.master_for(address.service, **master_options)


@lru_cache(maxsize=8)
def shared(url: str) -> Redis:
    """The process's client for `url` (its pool is thread-safe and renewed after a fork)."""
    return connect(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=15)
