"""Sender authentication read from a trusted `Authentication-Results` header (RFC 8601).

When a mail server sits in front of Hotline (Postfix with OpenDKIM/OpenDMARC, Rspamd, a hosted
mailbox…) it checks SPF, DKIM and DMARC and writes the results in an `Authentication-Results`
header under its own authserv-id. `mail.trusted_authserv_id` names that id (or a list of ids);
only the topmost header carrying it is read — the one our server added, above anything the sender
wrote (a server in front must also drop incoming headers that claim its id, as RFC 8601 §5 asks).

The verdict: DMARC `pass` → verified; DMARC `fail` → failed; otherwise an SPF `pass` for
`smtp.mailfrom`, or a DKIM `pass` for `header.d`, aligned with the From domain (the same domain
or one a subdomain of the other) → verified; a trusted header without such a pass → failed (a
server that only saw temporary errors: unknown). No trusted header, or no setting: unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:/\s*\d+\s*)?=\s*([A-Za-z]+)")
_PROPERTY = re.compile(r"([A-Za-z][\w-]*)\.([A-Za-z][\w.-]*)\s*=\s*(\"[^\"]*\"|[^\s;]+)")
TEMPORARY = frozenset(["temperror", "permerror"])


@dataclass(frozen=True)
class AuthVerdict:
    """`verified` is True, False or None (not checked / cannot tell)."""

    verified: bool | None
    authserv_id: str | None = None
    results: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def as_meta(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "authserv_id": self.authserv_id,
            "results": self.results,
            "reason": self.reason,
        }


def trusted_ids(setting: Any) -> frozenset[str]:
    """`mail.trusted_authserv_id`: one id or a list of ids, compared case-insensitively."""
    values: Iterable[Any] = [setting] if isinstance(setting, str) else (setting or [])
    return frozenset(str(v).strip().lower() for v in values if str(v).strip())


def _strip_comments(value: str) -> str:
    previous = None
    while previous != value:
        previous, value = value, _COMMENT.sub(" ", value)
    return " ".join(value.split())


def parse_results(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """(authserv-id, [(method, result, {ptype.property: value})]) of one header value."""
    clean = _strip_comments(value)
    head, _, rest = clean.partition(";")
    authserv_id = (head.split() or [""])[0].lower()
    found: list[tuple[str, str, dict[str, str]]] = []
    for resinfo in rest.split(";"):
        match = _RESULT.match(resinfo)
        if not match:
            continue
        props = {
            f"{p.lower()}.{n.lower()}": v.strip('"').lower()
            for p, n, v in _PROPERTY.findall(resinfo[match.end() :])
        }
        found.append((match.group(1).lower(), match.group(2).lower(), props))
    return authserv_id, found


def _domain(value: str | None) -> str:
    return (value or "").rpartition("@")[2].strip().strip(".").lower()


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment, approximated without a public-suffix list: the same domain, or one a
    subdomain of the other."""
    if not domain or not from_domain:
        return False
    return (
        domain == from_domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    )


def verdict(headers: list[str], from_email: str | None, trusted: frozenset[str]) -> AuthVerdict:
    """The sender's authentication per the topmost Authentication-Results of a trusted server."""
    if not trusted:
        return AuthVerdict(None, reason="no trusted authserv-id configured")
    for value in headers:
        try:
            authserv_id, results = parse_results(value)
        except Exception:  # an unreadable header is not ours to trust
            continue
        if authserv_id in trusted:
            return _judge(authserv_id, results, _domain(from_email))
    return AuthVerdict(None, reason="no Authentication-Results from a trusted server")


def _judge(
    authserv_id: str, results: list[tuple[str, str, dict[str, str]]], from_domain: str
) -> AuthVerdict:
    summary = {method: result for method, result, _ in results}
    if not from_domain:
        return AuthVerdict(None, authserv_id, summary, "no From address")
    if not results:
        return AuthVerdict(None, authserv_id, summary, "the server checked nothing")
    for method, result, _ in results:
        if method == "dmarc" and result == "pass":
            return AuthVerdict(True, authserv_id, summary, "dmarc=pass")
        if method == "dmarc" and result == "fail":
            return AuthVerdict(False, authserv_id, summary, "dmarc=fail")
    for method, result, props in results:
        if result != "pass":
            continue
        if method == "spf" and aligned(
            _domain(props.get("smtp.mailfrom") or props.get("smtp.helo")), from_domain
        ):
            return AuthVerdict(True, authserv_id, summary, "aligned spf=pass")
        if method == "dkim" and aligned(
            props.get("header.d") or _domain(props.get("header.i")), from_domain
        ):
            return AuthVerdict(True, authserv_id, summary, "aligned dkim=pass")
    if all(result in TEMPORARY for _, result, _ in results):
        return AuthVerdict(None, authserv_id, summary, "only temporary errors")
    return AuthVerdict(False, authserv_id, summary, "no aligned spf or dkim pass")
