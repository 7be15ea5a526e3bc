"""Flask application factory."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, abort, g, request, session
from sqlalchemy.orm import Session, sessionmaker

from intake.config import Settings, get_settings
from intake.db import reader, session_factory
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
        CSRF_EXEMPT_PREFIXES=("/voice/", "/api/", "/open311/", "/followup/"),
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
    _register_optional_blueprints(app)

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app


def read_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a view that only reads (a lone UPDATE such as a token's last use is fine): its
    session comes from `intake.db.reader` (no transaction on PostgreSQL, no write lock on SQLite),
    so the page's prepared queries are planned once per connection, not on every request."""
    view.read_only = True  # type: ignore[attr-defined]
    return view


def read_session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(reader(url), expire_on_commit=False)


def _register_optional_blueprints(app: Flask) -> None:
    """Channels that serve HTTP (the voice webhooks) register here once they exist."""
    try:
        from voice.paging import bp as paging_bp
    except ImportError:
        pass
    else:
        app.register_blueprint(paging_bp)
    try:
        from voice.webhooks import bp as voice_bp
    except ImportError:
        return
    app.register_blueprint(voice_bp)
