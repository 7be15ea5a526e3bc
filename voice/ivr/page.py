"""The call an on-call person gets when paged (`/voice/page?page=<id>`): the emergency read out;
pressing 1 acknowledges it, stops the chain and makes them the ticket's assignee. Its own
blueprint (not a caller's IVR), behind the same signature check as the webhooks."""

from __future__ import annotations

from flask import Blueprint, Response, request
from twilio.twiml.voice_response import VoiceResponse

from intake.models import Page, Ticket
from intake.paging import on_call_answered
from intake.phrases import render, spoken_ref
from voice.ivr.base import app_settings, db_sessions
from voice.languages import language as spoken

bp = Blueprint("paging", __name__, url_prefix="/voice")


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


@bp.route("/page", methods=["GET", "POST"])
def page_twiml() -> Response:
    settings = app_settings()
    language = settings.config.default_language
    say = spoken(settings.config, language).say
    response = VoiceResponse()
    page_id = request.args.get("page", "")
    with db_sessions()() as session:
        page = session.get(Page, int(page_id)) if page_id.isdigit() else None
        if page is None:
            response.hangup()
            return _twiml(response)
        digits = request.form.get("Digits") or request.args.get("Digits")
        if digits == "1":
            by = request.form.get("To") or request.form.get("Called")
            on_call_answered(
                session, page.ticket_id, by, how="pressed 1 on the page call", page_id=page.id
            )
            session.commit()
            response.say(render("notify_page_acknowledged_voice", language), language=say)
            response.hangup()
            return _twiml(response)
        ticket = session.get(Ticket, page.ticket_id)
        assert ticket is not None
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
