"""Sender authentication: our own SPF/DKIM/DMARC checks, or a trusted `Authentication-Results`.

When a mail server sits in front of Hotline (Postfix with OpenDKIM/OpenDMARC, Rspamd, a hosted
mailbox…) it checks SPF, DKIM and DMARC and writes the results in an `Authentication-Results`
header under its own authserv-id. `mail.trusted_authserv_id` names that id (or a list of ids);
only the topmost header carrying it is read — the one our server added, above anything the sender
wrote (a server in front must also drop incoming headers that claim its id, as RFC 8601 §5 asks).

The verdict: DMARC `pass` → verified; DMARC `fail` → failed; otherwise an SPF `pass` for
`smtp.mailfrom`, or a DKIM `pass` for `header.d`, aligned with the From domain (the same domain
or one a subdomain of the other) → verified; a trusted header without such a pass → failed (a
server that only saw temporary errors: unknown). No trusted header, or no setting: unknown.

When the SMTP listener faces the internet itself (`mail.verify_senders: true`), it checks SPF
(the connecting address, MAIL FROM and HELO), DKIM and DMARC with `authheaders` (dkimpy, pyspf)
and adds the result as the topmost `Authentication-Results` under `mail.authserv_id`; that id is
then trusted for mail that came through the listener (`source == "smtp"`) and for nothing else,
so a header a sender wrote under our id into mail fetched by IMAP is not believed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intake.config import MailSection

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:/\s*\d+\s*)?=\s*([A-Za-z]+)")
_PROPERTY = re.compile(r"([A-Za-z][\w-]*)\.([A-Za-z][\w.-]*)\s*=\s*(\"[^\"]*\"|[^\s;]+)")
TEMPORARY = frozenset(["temperror", "permerror"])

log = logging.getLogger(__name__)


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


def trusted_for(mail: MailSection, source: str) -> frozenset[str]:
    """The authserv-ids believed for mail that arrived by `source` ("smtp", "imap", …)."""
    trusted = frozenset(mail.trusted_authserv_id)
    own = mail.own_authserv_id
    return trusted | {own} if own and source == "smtp" else trusted


def check_sender(
    raw: bytes,
    *,
    authserv_id: str,
    peer_ip: str,
    mail_from: str,
    helo: str,
    dnsfunc: Callable[..., Any] | None = None,
) -> str:
    """Our own SPF, DKIM and DMARC checks of a message as it arrives, as the value of the
    `Authentication-Results` header a mail server in front would have written. DNS failures
    come out as temperror (an unknown verdict), never as an exception."""
    import authheaders
    import spf  # noqa: F401 - authheaders checks SPF only once pyspf is imported

    try:
        header = authheaders.authenticate_message(
            raw,
            authserv_id,
            spf=True,
            dkim=True,
            dmarc=True,
            ip=peer_ip,
            mail_from=mail_from,
            helo=helo,
            dnsfunc=dnsfunc,
        )
    except Exception as exc:  # a library error must not refuse the resident's mail
        log.warning("sender check failed (%s: %s); the verdict is unknown", type(exc).__name__, exc)
        return f"{authserv_id}; none"
    name, colon, value = str(header).partition(":")
    value = value if colon and name.strip().lower() == "authentication-results" else str(header)
    return " ".join(value.split())


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
