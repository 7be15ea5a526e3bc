"""The Twilio voice webhooks' front door: every `/voice/...` request is signature-checked, and an
unexpected error still gives the caller words and a voicemail (or, with the database down, a spool
that files the call later).

`POST /voice/incoming` and `POST /voice/status` are configured on the number; every other route is
reached only through TwiML returned here. The flows live in `voice/ivr/`, one file each: `menu`
(greeting, language and main menu), `reports` (descriptions, recordings, fallback), `emergency`,
`queue` (operator queue and virtual hold), `progress`, `outbound` (callback, follow-up, survey),
`status` (call status callbacks) and `page` (the on-call page call). Each answers from the
database alone (no network) and is safe to receive twice.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from voice import spool
from voice.ivr import emergency, menu, outbound, page, progress, queue, reports, status
from voice.ivr.base import app_config, app_settings, bp
from voice.ivr.prompts import voicemail
from voice.languages import language
from voice.signature import refuse_unsigned
from voice.twiml import Script, empty

FLOWS = (menu, reports, emergency, queue, progress, outbound, status, page)

log = logging.getLogger(__name__)


def _check_signature() -> Response | None:
    settings = app_settings()
    return refuse_unsigned(
        settings.public_base_url, settings.webhook_auth_token, log, settings.redis_url
    )


bp.before_request(_check_signature)
page_bp = page.bp
page_bp.before_request(_check_signature)


@bp.errorhandler(Exception)
def _apologise(exc: Exception) -> Response:
    """An unexpected error still gives the caller words and a voicemail, never a dead line."""
    if isinstance(exc, HTTPException):
        return Response(f"{exc.code} {exc.name}\n", status=exc.code or 500, mimetype="text/plain")
    script = Script(app_config(), language(app_config(), None), app_settings().public_base_url)
    if isinstance(exc, spool.DATABASE_DOWN) and request.form.get("CallSid"):
        return _spool(exc, script)
    log.exception("voice webhook failed: %s", request.path)
    voicemail(script, "voice_fallback", "voicemail")
    return script.http()


def _spool(exc: Exception, script: Script) -> Response:
    """The database is down: keep what Twilio sent (filed when it is back) and tell the truth."""
    settings = app_settings()
    kept = spool.keep(
        settings.data_dir, request.path, request.args.to_dict(), request.form.to_dict()
    )
    log.error(
        "database unavailable (%s); %s of %s kept in the voice spool (%s)",
        type(exc).__name__,
        request.path,
        request.form.get("CallSid"),
        kept.name,
    )
    _start_filer(current_app)
    if request.path in ("/voice/status", "/voice/recording"):
        return empty()
    if request.path in ("/voice/recorded", "/voice/record/none"):
        script.say("voice_outage_saved")
        script.hangup()
        return script.http()
    voicemail(script, "voice_fallback", "voicemail")
    return script.http()


def _start_filer(app: Any) -> None:
    settings = app.config["HOTLINE_SETTINGS"]
    spool.start_filer(
        app.extensions["hotline_sessions"],
        settings.config,
        settings.data_dir,
        fetch=bool(settings.twilio_account_sid),
        retry_seconds=float(app.config.get("VOICE_SPOOL_RETRY_SECONDS", spool.RETRY_SECONDS)),
    )


@bp.record_once
def _file_what_an_earlier_process_kept(state: Any) -> None:
    """A web process that starts and finds calls spooled by one before it files them."""
    if spool.spooled(state.app.config["HOTLINE_SETTINGS"].data_dir):
        _start_filer(state.app)


__all__ = ["FLOWS", "bp", "page_bp"]
