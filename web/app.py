"""Flask application factory."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, abort, g, request, session
from sqlalchemy.orm import Session

from intake.config import Settings, get_settings
from intake.db import session_factory
from web.db import read_session_factory
from web.jsonio import OrjsonProvider

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        HOTLINE_SETTINGS=settings,
        # Signed by Twilio, bearer tokens, and the HMAC in a follow-up link: none rides on a cookie.
        CSRF_EXEMPT_PREFIXES=("/voice/", "/api/", "/open311/", "/followup/", "/notices/stop/"),
    )
    if config:
        app.config.update(config)
    app.extensions["hotline_sessions"] = session_factory(settings.database_url)
    app.extensions["hotline_read_sessions"] = read_session_factory(settings.database_url)

    @app.before_request
    def _open_db() -> None:
        view = app.view_functions.get(request.endpoint or "")
        kind = "hotline_read_sessions" if getattr(view, "read_only", False) else "hotline_sessions"
        g.db = app.extensions[kind]()

    @app.teardown_request
    def _close_db(exc: BaseException | None) -> None:
        db: Session | None = g.pop("db", None)
        if db is not None:
            if exc is not None:
                db.rollback()
            db.close()

    @app.before_request
    def _refuse_nul() -> None:
        """No database stores a NUL in text (PostgreSQL refuses it): a console query or form
        value holding one is a 400 here, not a 500 later. The API, Open311 and the Twilio
        webhooks check their own input."""
        if request.path.startswith(app.config["CSRF_EXEMPT_PREFIXES"]):
            return
        values = request.args.items(multi=True)
        if request.method not in SAFE_METHODS:
            values = [*values, *request.form.items(multi=True)]
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in values):
            abort(400, description="NUL characters are not allowed")

    @app.before_request
    def _csrf() -> None:
        if request.method in SAFE_METHODS or request.path.startswith(
            app.config["CSRF_EXEMPT_PREFIXES"]
        ):
            return
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
        if not sent or not secrets.compare_digest(sent, session.get("csrf_token", "")):
            abort(400, description="missing or wrong CSRF token; reload the page and try again")

    @app.context_processor
    def _csrf_token() -> dict[str, Any]:
        if "csrf_token" not in session:
            session["csrf_token"] = secrets.token_urlsafe(32)
        return {"csrf_token": session["csrf_token"]}

    @app.after_request
    def _security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        return response

    from web.console import register_console

    register_console(app)
    from web.api import register_api
    from web.open311 import register_open311

    register_api(app)
    register_open311(app)
    _register_channel_blueprints(app)
    from web.ops import register_ops

    register_ops(app)
    return app


def _register_channel_blueprints(app: Flask) -> None:
    """The blueprints channels serve over HTTP: the voice webhooks (with the on-call page call),
    the building-incident announcement, the operator's call desk, and the email-answer page."""
    from voice.desk import bp as desk_bp
    from voice.incidents import bp as incidents_bp
    from voice.webhooks import bp as voice_bp
    from voice.webhooks import page_bp
    from web.followup import bp as followup_bp
    from web.notices_stop import bp as notices_stop_bp

    app.register_blueprint(followup_bp)
    app.register_blueprint(notices_stop_bp)
    app.register_blueprint(voice_bp)
    app.register_blueprint(page_bp)
    app.register_blueprint(incidents_bp)
    app.register_blueprint(desk_bp)
