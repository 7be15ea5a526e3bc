"""Threading: our signed Message-IDs, ticket tokens in subjects and bodies, reference lists.

Our outgoing Message-IDs look like ``<hl.{ticket_ref}.{outgoing_id}.{hmac16}@{domain}>``: a reply
that carries one names its ticket without a database hit and cannot be forged (osTicket style).
Subject tokens such as ``[HL-000123]`` are only a claim: the core checks the sender is a participant.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from email.utils import parseaddr

from intake.config import Settings
from intake.tickets import format_ref

MAX_REFERENCES = 50
MAX_ID_CHARS = 250  # Interaction.external_id is VARCHAR(300)
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_SIGNED = re.compile(
    r"^<hl\.([a-z]{1,10}-\d{1,10})\.([a-z0-9_-]{1,40})\.([0-9a-f]{16})@([^<>@\s]+)>$"
)
_OPEN = "[【〔〖(「"
_CLOSE = "]】〕〗)」"
_BODY_MARKER = re.compile(r"\{#([A-Za-z]{1,10}-\d{1,10})\.([0-9a-f]{8})#\}")


def normalize_message_id(value: str | None) -> str | None:
    """``<Foo@Bar>`` → ``<foo@bar>``; whitespace dropped; bare ids get brackets; junk (too long,
    control characters, undecodable bytes) → None."""
    if not value:
        return None
    compact = "".join(str(value).split())
    match = _MSGID.search(compact)
    core = match.group(1) if match else compact.strip("<>")
    if not core or len(core) > MAX_ID_CHARS or "<" in core or ">" in core:
        return None
    if any("\ud800" <= ch <= "\udfff" or ch < " " for ch in core):
        return None
    return f"<{core.lower()}>"


def parse_id_list(*values: str | None) -> tuple[str, ...]:
    """Every msg-id in In-Reply-To/References values, normalized, deduplicated, order kept."""
    seen: dict[str, None] = {}
    for value in values:
        if not value:
            continue
        for match in _MSGID.finditer(str(value)):
            normalized = normalize_message_id(match.group(0))
            if normalized and "@" in normalized:
                seen.setdefault(normalized, None)
    ids = list(seen)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:10] + ids[-(MAX_REFERENCES - 10) :]
    return tuple(ids)


def _signature(settings: Settings, payload: str, length: int = 16) -> str:
    key = settings.secret_key.encode("utf-8")
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def mail_domain(settings: Settings) -> str:
    """Domain of MAIL_FROM (``"Name <a@b>"`` or ``a@b``), lower-cased."""
    address = parseaddr(settings.mail_from)[1] or settings.mail_from
    return address.rpartition("@")[2].strip().lower() or "hotline.localhost"


def make_message_id(settings: Settings, ticket_ref: str, outgoing_id: int | str) -> str:
    """Our Message-ID for an outgoing mail about `ticket_ref`, signed with the secret key."""
    ref = ticket_ref.lower()
    sig = _signature(settings, f"{ref}.{outgoing_id}")
    return f"<hl.{ref}.{outgoing_id}.{sig}@{mail_domain(settings)}>"


def parse_signed_id(message_id: str | None) -> tuple[str, str, str] | None:
    """(ticket_ref, outgoing_id, signature) when the id has our shape, signature unchecked."""
    normalized = normalize_message_id(message_id)
    match = _SIGNED.match(normalized or "")
    return (match.group(1), match.group(2), match.group(3)) if match else None


def verify_message_id(settings: Settings, message_id: str | None) -> str | None:
    """The ticket ref (upper-case) when `message_id` is one of ours with a valid HMAC, else None."""
    parsed = parse_signed_id(message_id)
    if parsed is None:
        return None
    ref, outgoing_id, sig = parsed
    if not hmac.compare_digest(sig, _signature(settings, f"{ref}.{outgoing_id}")):
        return None
    return ref.upper()


_VERP = re.compile(r"^(.+)\+b\.(\d{1,18})\.([0-9a-f]{12})@([^@\s]+)$")


def make_verp_address(settings: Settings, outgoing_id: int) -> str:
    """The envelope sender of one outgoing message: ``local+b.{id}.{hmac12}@domain``. A bounce
    comes back to it, naming the message it is about with a signature nobody else can make."""
    address = parseaddr(settings.mail_from)[1] or settings.mail_from
    local, _, domain = address.partition("@")
    sig = _signature(settings, f"verp.{outgoing_id}", 12)
    return f"{local}+b.{outgoing_id}.{sig}@{domain}".lower()


def verp_outgoing_id(settings: Settings, address: str | None) -> int | None:
    """The outgoing-message id of one of our valid VERP addresses, else None."""
    match = _VERP.match((address or "").strip().strip("<>").lower())
    if not match:
        return None
    own = (parseaddr(settings.mail_from)[1] or settings.mail_from).lower()
    local, _, domain = own.partition("@")
    if match.group(1) != local or match.group(4) != domain:
        return None
    expected = _signature(settings, f"verp.{match.group(2)}", 12)
    if not hmac.compare_digest(match.group(3), expected):
        return None
    return int(match.group(2))


def outgoing_id_of(settings: Settings, message_id: str | None) -> str | None:
    """The outgoing-message id inside a valid signed Message-ID (for bounce bookkeeping)."""
    parsed = parse_signed_id(message_id)
    if parsed is None or verify_message_id(settings, message_id) is None:
        return None
    return parsed[1]


def signed_ref_in(settings: Settings, ids: tuple[str, ...]) -> str | None:
    """The ticket of the right-most valid signed id in a reference list."""
    for message_id in reversed(ids):
        ref = verify_message_id(settings, message_id)
        if ref:
            return ref
    return None


def _token_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(
        rf"[{re.escape(_OPEN)}]\s*#?\s*({re.escape(prefix)})\s*[-_]?\s*#?\s*(\d{{1,10}})\s*"
        rf"[{re.escape(_CLOSE)}]",
        re.IGNORECASE,
    )


def find_subject_token(subject: str | None, prefix: str) -> str | None:
    """The ticket ref named by a ``[HL-000123]`` token, tolerant of full-width brackets/digits."""
    if not subject:
        return None
    normalized = unicodedata.normalize("NFKC", subject[:2000])
    match = _token_pattern(prefix).search(normalized)
    if not match:
        return None
    return format_ref(prefix.upper(), int(match.group(2)))


def make_body_marker(settings: Settings, ticket_ref: str) -> str:
    """A short signed marker for the body of outgoing mail, for clients that drop References."""
    return f"{{#{ticket_ref.upper()}.{_signature(settings, 'body.' + ticket_ref.upper(), 8)}#}}"


def find_body_marker(settings: Settings, text: str | None) -> str | None:
    """The ticket ref of the first valid signed body marker in `text`."""
    for match in _BODY_MARKER.finditer(text or ""):
        ref = match.group(1).upper()
        if hmac.compare_digest(match.group(2), _signature(settings, "body." + ref, 8)):
            return ref
    return None
