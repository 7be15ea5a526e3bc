"""The audit log in the console (`/admin/audit`, administrators only): newest first, filtered by
action, person and day, each entry said in the reader's language."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from flask import Blueprint, current_app, g, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from intake.audit import ACTIONS
from intake.models import AuditEntry, Department
from web.auth import login_required
from web.i18n import LANGUAGE_NAMES
from web.labels import role_label, spoken_label

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")
PAGE = 100


def action_labels() -> dict[str, str]:
    return {
        "sign_in": _("Signed in"),
        "sign_in_failed": _("Failed sign-in"),
        "sign_out": _("Signed out"),
        "operator_created": _("Operator added"),
        "operator_changed": _("Operator changed"),
        "api_token_created": _("API token created"),
        "api_token_revoked": _("API token revoked"),
        "config_changed": _("Configuration changed"),
        "report_exported": _("Report exported"),
        "job_retried": _("Failed job retried"),
        "resident_exported": _("Resident's data exported"),
        "resident_erased": _("Resident's data erased"),
        "resident_changed": _("Resident's preferences changed"),
        "retention_run": _("Old data removed (retention)"),
    }


def _field_label(name: str) -> str:
    return {
        "role": _("Role"),
        "active": _("Active"),
        "department": _("Department"),
        "language": _("Language"),
        "phone": _("Phone"),
        "spoken_language": _("Speaks on the phone"),
        "notices_opt_out": _("Building notices"),
    }.get(name, name)


def _value(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "role":
        return role_label(str(value))
    if name == "active":
        return _("yes") if value else _("no")
    if name == "notices_opt_out":
        return _("Urgent incidents only") if value else _("All notices")
    if name == "language":
        return LANGUAGE_NAMES.get(str(value), str(value))
    if name == "spoken_language":
        return spoken_label(str(value))
    if name == "department":
        from web.i18n import current_language

        dept = g.db.scalar(select(Department).where(Department.code == value))
        if dept is not None:
            return str(dept.name(current_language()))
    return str(value)


def describe(entry: AuditEntry) -> str:
    """The entry's details as a sentence in the reader's language."""
    d = entry.detail or {}
    if entry.action in ("operator_created", "api_token_created") and d.get("role_given"):
        return _("Role: %(role)s", role=_api_or_operator_role(str(d["role_given"])))
    if entry.action in ("operator_changed", "resident_changed"):
        changes = d.get("changed") or {}
        said = [
            _(
                "%(field)s: %(before)s → %(after)s",
                field=_field_label(k),
                before=_value(k, a),
                after=_value(k, b),
            )
            for k, (a, b) in changes.items()
        ]
        if d.get("password_changed"):
            said.append(_("Password changed"))
        if d.get("via") == "notice link":
            said.append(_("by the resident, from the link in a notice email"))
        return _("; ").join(said) or _("Password or details changed")
    if entry.action == "config_changed":
        return _("; ").join(describe_config_change(c) for c in d.get("changes") or [])
    if entry.action == "report_exported" and d.get("start"):
        return _("Period %(start)s – %(end)s", start=d["start"], end=d.get("end", ""))
    if entry.action == "retention_run":
        removed = d.get("removed") or {}
        return "; ".join(f"{_kind(k)}: {n}" for k, n in removed.items() if n) or _("nothing")
    if entry.action == "resident_erased" and "tickets_kept" in d:
        return _("%(n)s tickets kept for statistics", n=d["tickets_kept"])
    return ""


def _in_my_language(names: Any, fallback: str) -> str:
    """A configured name (`{zh-Hant: …, en: …}`) in the reader's language."""
    from web.i18n import current_language

    if isinstance(names, dict):
        return str(names.get(current_language()) or names.get("zh-Hant") or fallback)
    return fallback


def _listed(value: Any) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return _("、").join(str(v) for v in value)
    return str(value)


def _setting_label(name: str) -> str:
    return {
        "PUBLIC_BASE_URL": _("Public address (Twilio signatures)"),
        "MAIL_FROM": _("Complaint mailbox address"),
        "TWILIO_NUMBER": _("Hotline phone number"),
        "TWILIO_ACCOUNT_SID": _("Twilio account"),
        "IMAP_URL": _("Mailboxes polled"),
        "SMTP_URL": _("Outgoing mail server"),
        "SMTPD": _("Mail listener address"),
        "METRICS_ALLOW": _("Addresses allowed to read metrics"),
        "METRICS_TOKEN": _("Metrics token"),
        "LOG_FORMAT": _("Log format"),
    }.get(name, _("Another setting"))


def _section_label(name: str) -> str:
    return {
        "company": _("Company name, ticket prefix and phone region"),
        "timezone": _("Time zone"),
        "holidays": _("Holidays"),
        "business_hours": _("Business hours"),
        "quiet_hours": _("Quiet hours"),
        "languages": _("Languages"),
        "default_language": _("Default language"),
        "negations": _("Negation words"),
        "categories": _("Categories and keywords"),
        "priority_keywords": _("Priority keywords"),
        "sla_profiles": _("SLA profiles"),
        "callbacks": _("Callbacks"),
        "notifications": _("Notifications"),
        "sla": _("SLA escalation"),
        "voice": _("Phone menu and queue"),
        "mail": _("Mail handling"),
        "alerts": _("Alert contacts"),
        "retention": _("Retention periods"),
    }.get(name, _("Other configuration"))


def _spoken_language(code: str) -> str:
    return {"yue": _("Cantonese")}.get(code) or LANGUAGE_NAMES.get(code, _("another language"))


def _said(thing: str, what: str) -> str:
    return _("%(thing)s %(what)s", thing=thing, what=what)


def describe_config_change(change: dict[str, Any]) -> str:
    """One configuration item's change as a sentence, naming things as people know them."""
    kind, _sep, name = str(change.get("item", "")).partition(":")
    before, after = change.get("before"), change.get("after")
    either = (after if after is not None else before) or {}
    if before is None:
        how = _("added")
    elif after is None:
        how = _("removed")
    else:
        how = _("changed")
    if kind == "department":
        dept = _("Department “%(name)s”", name=_in_my_language(either.get("names"), name))
        if before is None or after is None:
            return _said(dept, how)
        parts = []
        if before.get("on_call") != after.get("on_call"):
            parts.append(
                _(
                    "on-call order: %(before)s → %(after)s",
                    before=_listed(before.get("on_call")),
                    after=_listed(after.get("on_call")),
                )
            )
        if before.get("email") != after.get("email"):
            parts.append(
                _(
                    "email: %(before)s → %(after)s",
                    before=_listed(before.get("email")),
                    after=_listed(after.get("email")),
                )
            )
        if before.get("names") != after.get("names"):
            parts.append(_("names changed"))
        return _said(dept, _("、").join(parts or [how]))
    if kind == "routing_rule":
        rule = _("Routing rule “%(name)s”", name=_in_my_language(either.get("names"), name))
        if before is None or after is None:
            return _said(rule, how)
        parts = []
        if before.get("when") != after.get("when"):
            parts.append(_("conditions changed"))
        if before.get("then") != after.get("then"):
            parts.append(_("destination or priority changed"))
        if before.get("position") != after.get("position"):
            parts.append(
                _(
                    "order: %(before)s → %(after)s",
                    before=before.get("position"),
                    after=after.get("position"),
                )
            )
        if before.get("names") != after.get("names"):
            parts.append(_("names changed"))
        return _said(rule, _("、").join(parts or [how]))
    if kind == "template":
        language, _slash, _phrase = name.partition("/")
        return _(
            "Standard phrase “%(opening)s…” (%(language)s) %(how)s",
            opening=str(either.get("opening", ""))[:24],
            language=_spoken_language(language),
            how=how,
        )
    if kind == "setting":
        if name == "METRICS_TOKEN":
            before, after = (_("set") if v else None for v in (before, after))
        return _(
            "%(field)s: %(before)s → %(after)s",
            field=_setting_label(name),
            before=_listed(before),
            after=_listed(after),
        )
    return _said(_section_label(name), how)


def _api_or_operator_role(code: str) -> str:
    api = {
        "readonly": _("API: read only"),
        "open311": _("API: Open311 only"),
        "cli": _("Command line"),
    }
    return api.get(code) or role_label(code)


def _kind(code: str) -> str:
    return {
        "raw_mail": _("Raw mail"),
        "attachments": _("Attachments"),
        "recordings": _("Recordings"),
        "transcripts": _("Transcripts"),
        "outgoing_messages": _("Outgoing messages"),
        "call_events": _("Call events"),
        "audit_log": _("Audit log"),
    }.get(code, code)


def target_label(entry: AuditEntry) -> str:
    """The entry's subject; report codes in the reader's language."""
    if entry.action == "report_exported":
        return {
            "volume": _("Volume by channel and day"),
            "abandoned": _("Abandoned calls by hour"),
            "satisfaction": _("Satisfaction by department"),
            "hotspots": _("Hot spots: category × building"),
            "repeats": _("Repeat problems per unit"),
            "sla": _("SLA compliance"),
        }.get(entry.target or "", entry.target or "—")
    return entry.target or "—"


def source_label(source: str | None) -> str:
    if source == "command line":
        return _("Command line")
    return source or "—"


@bp.get("/")
@login_required("admin")
def index() -> Any:
    tz = current_app.config["HOTLINE_SETTINGS"].config.timezone
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE + 1)
    action = request.args.get("action", "")
    if action in ACTIONS:
        query = query.where(AuditEntry.action == action)
    person = request.args.get("actor", "").strip().lower()[:254]
    if person:
        query = query.where(AuditEntry.actor.contains(person))
    day_text = request.args.get("day", "")
    try:
        day = datetime.strptime(day_text, "%Y-%m-%d").date() if day_text else None
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, time(), tz)
        query = query.where(AuditEntry.at >= start, AuditEntry.at < start + timedelta(days=1))
    before = request.args.get("before", "")
    if before.isdigit():
        query = query.where(AuditEntry.id < int(before))
    entries = list(g.db.scalars(query))
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    return render_template(
        "audit.html",
        entries=entries,
        more=more,
        actions=action_labels(),
        describe=describe,
        source_label=source_label,
        target_label=target_label,
        role_label=_api_or_operator_role,
        args=request.args,
        day_invalid=bool(day_text) and day is None,
    )
