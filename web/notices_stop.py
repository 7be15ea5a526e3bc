"""The stop link of a planned-works notice email (`/notices/stop/<token>`, a signed token naming the
resident): the page asks to confirm with a button; the button, or a mail program's one-click
unsubscribe (RFC 8058: a POST with `List-Unsubscribe=One-Click`), stops those notices. Incidents
still reach the resident."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from markupsafe import Markup, escape

from intake.config import Settings
from intake.incidents import read_stop_notices_token, stop_planned_notices
from intake.models import Resident
from intake.phrases import render
from web.followup import resident_page

bp = Blueprint("notices_stop", __name__)

TITLE = "notices_stop_page_title"


@bp.route("/notices/stop/<token>", methods=["GET", "POST"])
def stop(token: str) -> tuple[str, int, dict[str, str]]:
    """GET only asks: mail scanners and link previews open every link in a message."""
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }
    resident_id = read_stop_notices_token(settings.secret_key, token)
    resident = g.db.get(Resident, resident_id) if resident_id is not None else None
    if resident is None:
        language = settings.config.default_language
        text = escape(render("notices_stop_invalid", language))
        return resident_page(language, Markup(f"<p>{text}</p>"), TITLE), 404, headers
    language = resident.language or settings.config.default_language
    if request.method == "GET" and not resident.notices_opt_out:
        question = escape(render("notices_stop_confirm", language, name=resident.name or ""))
        button = escape(render("notices_stop_button", language))
        form = (
            f'<form method="post"><p>{question}</p><button type="submit" '
            f'name="List-Unsubscribe" value="One-Click">{button}</button></form>'
        )
        return resident_page(language, Markup(form), TITLE), 200, headers
    if request.method == "POST":
        stop_planned_notices(g.db, resident, request.remote_addr)
        g.db.commit()
    done = escape(render("notices_stop_done", language))
    return resident_page(language, Markup(f"<p>{done}</p>"), TITLE), 200, headers
