"""What every voice flow shares: the voice blueprint and the small lookups the flows make. The
request helpers live in `voice.context` and are re-exported here for the flows.

`bp` is the voice blueprint (`/voice/...`); `voice.webhooks` puts the signature check and the
apology in front of it and registers the flows.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request
from sqlalchemy import select

from intake.models import Ticket
from voice.context import app_config as app_config
from voice.context import app_settings as app_settings
from voice.context import current_call as current_call
from voice.context import db_sessions as db_sessions
from voice.context import param as param
from voice.context import script_for as script_for
from voice.languages import VoiceLanguage

bp = Blueprint("voice", __name__, url_prefix="/voice")

MAX_DIGITS = 12


def int_arg(name: str, default: int = 0) -> int:
    """A small non-negative number from our own query string, else `default`."""
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 9 else default


def ticket_ref(ticket_id: int | None) -> str | None:
    """The ticket's reference (HL-000123), None without a ticket."""
    if ticket_id is None:
        return None
    with db_sessions()() as session:
        return session.scalar(select(Ticket.ref).where(Ticket.id == ticket_id))


def category_name(ticket_id: int, lang: VoiceLanguage) -> str:
    """The ticket's category as the caller's language names it."""
    with db_sessions()() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        category = app_config().category(ticket.category)
        return category.names.get(lang.written, ticket.category) if category else ticket.category


def hints(lang: VoiceLanguage, topics: tuple[str, ...]) -> str:
    """Speech hints from the configured category keywords in the caller's script (built once)."""
    cache: dict[tuple[str, tuple[str, ...]], str] = current_app.extensions.setdefault(
        "voice_hints", {}
    )
    key = (lang.key, topics)
    if key not in cache:
        cache[key] = _build_hints(lang, topics)
    return cache[key]


def _build_hints(lang: VoiceLanguage, topics: tuple[str, ...]) -> str:
    words: list[str] = []
    for code in topics:
        category = app_config().category(code)
        for word in category.keywords if category else ():
            if word.isascii() == (lang.written == "en") and word not in words:
                words.append(word)
    return ",".join(words[:60])
