"""The one-click answers in a follow-up or survey email (`/followup/<token>`, a signed token):
the link shows the answer with a button, and the button records it through `intake.lifecycle`."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from markupsafe import Markup, escape

from intake.config import Settings
from intake.lifecycle import answer_link, link_state, read_follow_up_token
from intake.models import Callback
from intake.phrases import render

bp = Blueprint("followup", __name__)


def _settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def _answer_label(answer: str, language: str) -> str:
    if answer in ("fixed", "not_fixed"):
        return render(f"survey_answer_label_{answer}", language)
    return f"{answer}/5"


def resident_page(language: str, body: Markup, title: str = "survey_page_title") -> str:
    """A small page a resident opens from an email: no console around it, their language."""
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(render(title, language))}</title></head>"
        f'<body style="font: 1.1rem/1.6 sans-serif; max-width: 34rem; margin: 2rem auto; '
        f'padding: 0 1rem">{body}</body></html>'
    )


@bp.route("/followup/<token>", methods=["GET", "POST"])
def follow_up_answer(token: str) -> tuple[str, int, dict[str, str]]:
    """GET only asks to confirm: mail scanners and link previews open every link in a message,
    and must not answer for the resident. The button POSTs the answer."""
    settings = _settings()
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }
    parsed = read_follow_up_token(settings.secret_key, token)
    callback = g.db.get(Callback, parsed[0]) if parsed else None
    if parsed is None or callback is None:
        language = settings.config.default_language
        text = escape(render("survey_answer_invalid", language))
        return resident_page(language, Markup(f"<p>{text}</p>")), 404, headers
    answer = parsed[1]
    language = callback.ticket.language
    label = _answer_label(answer, language)
    state = link_state(g.db, callback, answer, settings.config)
    if request.method == "GET" and state != "open":
        said = escape(render(f"survey_answer_{state}", language))
        return resident_page(language, Markup(f"<p>{said}</p>")), 200, headers
    if request.method == "GET":
        question = escape(render("survey_answer_confirm", language, answer=label))
        button = escape(render("survey_answer_send", language))
        form = (
            f'<form method="post"><p>{question}</p><button type="submit">{button}</button></form>'
        )
        return resident_page(language, Markup(form)), 200, headers
    outcome = answer_link(
        g.db,
        callback,
        answer,
        actor=f"resident via email ({callback.email or callback.ticket.contact_email})",
        config=settings.config,
    )
    g.db.commit()
    if outcome in ("expired", "already_answered"):
        said = escape(render(f"survey_answer_{outcome}", language))
        return (
            resident_page(language, Markup(f"<p>{said}</p>")),
            410 if outcome == "expired" else 200,
            headers,
        )
    thanks = escape(render("survey_answer_thanks", language, answer=label))
    return resident_page(language, Markup(f"<p>{thanks}</p>")), 200, headers
