"""What every voice blueprint needs from the app and the request: the settings, the database,
Twilio's parameters, the call a webhook is about and the script it answers with. One home for the
flows (`voice.ivr`), the desk (`voice.desk`) and the incident announcements (`voice.incidents`).
"""

from __future__ import annotations

from flask import abort, current_app, request
from sqlalchemy.orm import Session, sessionmaker

from intake.config import HotlineConfig, Settings
from intake.models import Call
from voice import filing
from voice.languages import language
from voice.twiml import Script


def app_settings() -> Settings:
    return current_app.config["HOTLINE_SETTINGS"]


def app_config() -> HotlineConfig:
    return app_settings().config


def db_sessions() -> sessionmaker[Session]:
    return current_app.extensions["hotline_sessions"]


def param(name: str, limit: int = 200) -> str:
    """A Twilio parameter (form, else query string), cut to `limit` characters."""
    return (request.form.get(name) or request.args.get(name) or "")[:limit]


def current_call() -> Call:
    """The call this webhook is about (400 without a CallSid), created on its first webhook."""
    if not request.form.get("CallSid"):
        abort(400, description="CallSid is required")
    return filing.ensure_call(db_sessions(), request.form, app_config())


def script_for(call: Call) -> Script:
    """What the caller hears next, in the call's language."""
    return Script(
        app_config(), language(app_config(), call.language), app_settings().public_base_url
    )
