"""Wires the operator console into the Flask app: languages, template helpers, blueprints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, current_app, g
from flask_babel import get_locale, get_translations

from intake.constants import LANGUAGES
from web.events import (
    actor_label,
    call_status_label,
    category_name,
    decision_sentence,
    department_name,
    filesize,
    ivr_path,
    rule_then,
    rule_when,
    weekday_name,
)
from web.events import describe as describe_event
from web.i18n import LANGUAGE_NAMES, current_language, init_babel
from web.labels import LABELS


def _local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "—"
    tz = current_app.config["HOTLINE_SETTINGS"].config.timezone
    return moment.astimezone(tz).strftime(fmt)


def _translations() -> Any:
    """The request's catalog, looked up once: flask-babel's own lookup costs tens of µs a call."""
    translations = g.get("hotline_translations")
    if translations is None:
        translations = g.hotline_translations = get_translations()
    return translations


def _template_gettext(message: str) -> str:
    return str(_translations().ugettext(message))


def _template_ngettext(singular: str, plural: str, n: int) -> str:
    return str(_translations().ungettext(singular, plural, n))


def _duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def register_console(app: Flask) -> None:
    from web import (
        admin,
        auth,
        callbacks,
        incidents,
        new_ticket,
        queue,
        reports,
        residents,
        ticket,
    )

    settings = app.config["HOTLINE_SETTINGS"]
    init_babel(app, settings.data_dir / "translations")
    # install_gettext_callables comes with jinja2.ext.i18n, which Flask-Babel adds at run time.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]  # see above
        _template_gettext, _template_ngettext, newstyle=True
    )
    auth.install(app)
    app.jinja_env.filters["local"] = _local
    app.jinja_env.filters["duration"] = _duration
    app.jinja_env.filters["ivr_path"] = ivr_path
    app.jinja_env.filters["filesize"] = filesize
    app.jinja_env.globals["call_status_label"] = call_status_label
    app.jinja_env.globals.update(
        rule_when=rule_when,
        rule_then=rule_then,
        decision_sentence=decision_sentence,
        weekday_name=weekday_name,
        category_name_of=category_name,
        department_name_of=department_name,
    )
    app.jinja_env.globals.update(LABELS)
    app.jinja_env.globals["describe_event"] = describe_event
    app.jinja_env.globals["actor_label"] = actor_label
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES

    @app.context_processor
    def _console_context() -> dict[str, Any]:
        context: dict[str, Any] = {
            "language": current_language() if "db" in g else "zh-Hant",
            "html_lang": str(get_locale() or "zh_Hant").replace("_", "-"),
        }
        op = auth.current_operator() if "db" in g else None
        if op is not None and op.role in auth.STAFF:
            context["counts"] = queue.waiting_counts()
        return context

    from web import desk

    desk.install(app)
    for blueprint in (
        auth.bp,
        queue.bp,
        ticket.bp,
        new_ticket.bp,
        callbacks.bp,
        residents.bp,
        reports.bp,
        admin.bp,
        incidents.bp,
    ):
        app.register_blueprint(blueprint)
    incidents.install(app)
