"""Two small public routes owned by the worker side:

- `/voice/page?page=<id>`: the TwiML an on-call person hears when paged; pressing 1 acknowledges
  the page, stops the chain and makes them the ticket's assignee (`on_call_answered`, which the
  caller's live <Dial> uses too). Requests must carry a valid X-Twilio-Signature.
- `/followup/<token>`: the one-click answers in a follow-up / survey email (signed tokens): the
  link shows the answer with a button, and the button records it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, g, request
from markupsafe import Markup, escape
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from intake.config import Settings
from intake.lifecycle import answer_link, link_state, read_follow_up_token
from intake.models import Callback, Operator, Page, Ticket, utcnow
from intake.phrases import render, spoken_ref
from intake.tickets import record_event

bp = Blueprint("paging", __name__)

# A page still running, or one that ran out of people (a late answer still counts).
STOPPABLE = ("paging", "exhausted")
SAY_LANGUAGES = {"zh-Hant": "cmn-TW", "zh-Hans": "cmn-CN", "en": "en-US"}


def _settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def _signed_by_twilio(settings: Settings) -> bool:
    """Validate against PUBLIC_BASE_URL + the raw path and query, as Twilio signed it."""
    signature = request.headers.get("X-Twilio-Signature", "")
    raw_query = request.query_string.decode("latin-1")
    url = (
        settings.public_base_url.rstrip("/") + request.path + (f"?{raw_query}" if raw_query else "")
    )
    params = request.form.to_dict(flat=True) if request.method == "POST" else {}
    return RequestValidator(settings.webhook_auth_token).validate(url, params, signature)


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def on_call_answered(
    session: Session, ticket_id: int, number: str | None, *, how: str, page_id: int | None = None
) -> bool:
    """Someone on call answered the emergency (the caller's live <Dial>, or 1 pressed on a page
    call): every page of the ticket stops, and they become its assignee (the operator whose phone
    is `number`; without one, the timeline says who answered). The first answer wins; the caller
    commits. Returns whether this answer was the first.

    A ticket not paged yet gets its page row already acknowledged, so the page never starts.
    """
    now = utcnow()
    by = number or "unknown"

    def stop(*which: Any) -> int:
        return int(
            session.execute(
                update(Page)
                .where(Page.ticket_id == ticket_id, Page.status.in_(STOPPABLE), *which)
                .values(status="acknowledged", acknowledged_by=number, acknowledged_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
        )

    if page_id is not None:  # 1 pressed on this page's call: it must still be running
        if not stop(Page.id == page_id):
            return False
        stop()  # and any other page of the ticket
    elif not stop():
        if session.scalar(
            select(Page.id).where(Page.ticket_id == ticket_id, Page.status == "acknowledged")
        ):
            return False
        session.add(
            Page(
                ticket_id=ticket_id,
                reason="emergency",
                chain=[],
                status="acknowledged",
                acknowledged_by=number,
                acknowledged_at=now,
            )
        )
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    record_event(
        session,
        ticket,
        "page_acknowledged",
        f"{by} answered ({how}): the on-call page stops",
        actor=by,
        number=number,
        how=how,
        page_id=page_id,
    )
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
    operator = (
        session.scalar(
            select(Operator)
            .where(Operator.phone == number, Operator.active.is_(True))
            .order_by(Operator.id)
            .limit(1)
        )
        if number
        else None
    )
    if operator is None:
        record_event(
            session,
            ticket,
            "on_call_taken",
            f"{by} (on call) has the emergency; no operator has that phone, so nobody is assigned",
            actor=by,
            number=number,
        )
        return True
    assigned = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.assignee_id.is_(None))
        .values(assignee_id=operator.id, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if assigned:
        session.refresh(ticket, ["assignee_id"])
        record_event(
            session,
            ticket,
            "assigned",
            operator.email,
            actor=by,
            assignee=operator.email,
            reason=f"on call, answered the emergency ({how})",
        )
    else:
        record_event(
            session,
            ticket,
            "on_call_taken",
            f"{operator.name} ({by}, on call) has the emergency; the ticket keeps its assignee",
            actor=by,
            number=number,
            operator=operator.email,
        )
    return True


def acknowledge_page(page_id: int, by: str | None) -> bool:
    """Someone on call pressed 1: stop the chain (the first acknowledgement wins)."""
    session = g.db
    page = session.get(Page, page_id)
    if page is None:
        return False
    first = on_call_answered(
        session, page.ticket_id, by, how="pressed 1 on the page call", page_id=page_id
    )
    session.commit()
    return first


@bp.route("/voice/page", methods=["GET", "POST"])
def page_twiml() -> Response:
    settings = _settings()
    if not _signed_by_twilio(settings):
        abort(403)
    language = settings.config.default_language
    say = SAY_LANGUAGES.get(language, "cmn-TW")
    response = VoiceResponse()
    page_id = request.args.get("page", "")
    page = g.db.get(Page, int(page_id)) if page_id.isdigit() else None
    if page is None:
        response.hangup()
        return _twiml(response)
    digits = request.form.get("Digits") or request.args.get("Digits")
    if digits == "1":
        acknowledge_page(page.id, request.form.get("To") or request.form.get("Called"))
        response.say(render("notify_page_acknowledged_voice", language), language=say)
        response.hangup()
        return _twiml(response)
    ticket = g.db.get(Ticket, page.ticket_id)
    category = settings.config.category(ticket.category)
    location = f"{ticket.unit.building.name} {ticket.unit.label}" if ticket.unit else ""
    prompt = render(
        "notify_page_voice",
        language,
        ref_spoken=spoken_ref(ticket.ref or "", language),
        category=category.names.get(language) if category else ticket.category,
        location=location,
    )
    gather = response.gather(
        num_digits=1, action=f"/voice/page?page={page.id}", method="POST", timeout=8
    )
    gather.say(prompt, language=say)
    gather.say(prompt, language=say)
    response.say(render("notify_page_unanswered_voice", language), language=say)
    response.hangup()
    return _twiml(response)


def _answer_label(answer: str, language: str) -> str:
    if answer in ("fixed", "not_fixed"):
        return render(f"survey_answer_label_{answer}", language)
    return f"{answer}/5"


def _resident_page(language: str, body: Markup) -> str:
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(render('survey_page_title', language))}</title></head>"
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
        return _resident_page(language, Markup(f"<p>{text}</p>")), 404, headers
    answer = parsed[1]
    language = callback.ticket.language
    label = _answer_label(answer, language)
    state = link_state(g.db, callback, answer, settings.config)
    if request.method == "GET" and state != "open":
        said = escape(render(f"survey_answer_{state}", language))
        return _resident_page(language, Markup(f"<p>{said}</p>")), 200, headers
    if request.method == "GET":
        question = escape(render("survey_answer_confirm", language, answer=label))
        button = escape(render("survey_answer_send", language))
        form = (
            f'<form method="post"><p>{question}</p><button type="submit">{button}</button></form>'
        )
        return _resident_page(language, Markup(form)), 200, headers
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
            _resident_page(language, Markup(f"<p>{said}</p>")),
            410 if outcome == "expired" else 200,
            headers,
        )
    thanks = escape(render("survey_answer_thanks", language, answer=label))
    return _resident_page(language, Markup(f"<p>{thanks}</p>")), 200, headers
