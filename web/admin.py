"""Administration: departments and on-call chains, routing rules with a dry run, standard-phrase
templates previewed per language, business hours and holidays, operators; the health page."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from jinja2 import TemplateError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from intake import audit
from intake.auth import ROLES, hash_password
from intake.calendar import describe_hours, holiday_calendar
from intake.classify import classify
from intake.constants import LANGUAGES
from intake.models import ChannelHealth, Department, Operator, Outbox, utcnow
from intake.phones import normalize_phone
from intake.phrases import TEMPLATE_DIR, render, template_name
from intake.routing import TicketFacts, decide
from web.auth import MANAGERS, current_operator, end_sessions, login_required, who
from web.i18n import current_language
from web.labels import job_label

bp = Blueprint("admin", __name__, url_prefix="/admin")
SAMPLE_CONTEXT: dict[str, Any] = {
    "name": "陳大文",
    "ref": "HL-000123",
    "company": "",
    "operator": "林接線員",
    "subject": "廚房漏水",
    "received_at": "2026-11-02 10:15",
    "department": "工程部",
    "chars": list("HL000123"),
}


def _config() -> Any:
    return current_app.config["HOTLINE_SETTINGS"].config


@bp.get("/")
@login_required("admin")
def index() -> Any:
    return render_template("admin.html", page="index")


@bp.get("/departments")
@login_required("admin")
def departments() -> Any:
    config = _config()
    rows = {d.code: d for d in g.db.scalars(select(Department))}
    staff = g.db.execute(
        select(Operator.department_id, func.count())
        .where(Operator.active.is_(True))
        .group_by(Operator.department_id)
    ).all()
    return render_template(
        "admin.html",
        page="departments",
        departments=config.departments,
        rows=rows,
        staff=dict(staff),
    )


@bp.get("/routing")
@login_required("admin")
def routing() -> Any:
    """The rules in order, and a dry run: which rule a made-up ticket would hit, and why."""
    config = _config()
    result = None
    args = request.args
    if args.get("text") is not None and "run" in args:
        text = args.get("text", "")[:2000]
        found = classify(text, config, category_hint=args.get("category") or None)
        try:
            at = (
                datetime.fromisoformat(args["at"]).replace(tzinfo=config.timezone)
                if args.get("at")
                else utcnow()
            )
        except ValueError:
            abort(400)
        facts = TicketFacts(
            category=found.category,
            priority=found.priority,
            channel=args.get("channel") or "email",
            text=text,
            building=args.get("building") or None,
            created_at=at,
        )
        result = {"classification": found, "decision": decide(facts, config)}
    replay = _replay(config) if "replay" in args else None
    return render_template(
        "admin.html",
        page="routing",
        rules=config.routing_rules,
        result=result,
        args=args,
        replay=replay,
    )


def _replay(config: Any, limit: int = 100) -> list[dict[str, Any]]:
    """The rules as configured now, replayed on recent tickets: where would each one go today?"""
    from intake.routing import replay

    rows = []
    for ticket in replay(g.db, config, limit):
        decision = ticket.decision
        then = (
            (ticket.then.get("department"), ticket.then.get("priority"))
            if ticket.then
            else (None, None)
        )
        rows.append(
            {
                "ref": ticket.ref,
                "then": then,
                "now": (decision.department, decision.priority),
                "rule": decision.rule,
                "why": decision.explain(),
                "decision": decision,
                "changed": ticket.then is not None
                and then != (decision.department, decision.priority),
            }
        )
    return rows


def _phrase_names() -> list[str]:
    return sorted({p.stem for p in TEMPLATE_DIR.glob("*/*.txt")})


@bp.get("/templates")
@login_required("admin")
def templates() -> Any:
    config = _config()
    name = request.args.get("name", "")
    names = _phrase_names()
    previews = {}
    if name:
        if name not in names:
            abort(404)
        for lang in LANGUAGES:
            try:
                previews[lang] = render(
                    name, lang, **{**SAMPLE_CONTEXT, "company": config.company(lang)}
                )
            except TemplateError as exc:
                previews[lang] = f"⚠ {exc}"
    available = {n: sorted(p.parent.name for p in TEMPLATE_DIR.glob(f"*/{n}.txt")) for n in names}
    language = current_language()
    groups: dict[str, list[tuple[str, str]]] = {}
    for n in names:
        groups.setdefault(_phrase_group(n), []).append((n, _first_line(n, language, config)))
    return render_template(
        "admin.html",
        page="templates",
        names=names,
        name=name,
        previews=previews,
        available=available,
        groups=groups,
    )


def _phrase_group(name: str) -> str:
    if name.startswith("canned_"):
        return _("Replies an operator picks")
    if name.startswith(("ack_", "reply_", "survey_", "follow_up")):
        return _("Messages sent to residents")
    if name.startswith("voice_") or name == "ref_spoken":
        return _("What callers hear")
    if name.startswith("notify_"):
        return _("Messages to departments and on-call staff")
    return _("Other phrases")


def _first_line(name: str, language: str, config: Any) -> str:
    """The phrase's opening words in `language`, with the sample values filled in."""
    try:
        text = render(name, language, **{**SAMPLE_CONTEXT, "company": config.company(language)})
    except TemplateError:  # a phrase needing values the sample lacks: its own words, as written
        try:
            text = (TEMPLATE_DIR / template_name(name, language)).read_text(encoding="utf-8")
        except (OSError, TemplateError):
            return ""
        text = re.sub(r"\{#.*?#\}|\{%.*?%\}", "", text, flags=re.S)
    words = " ".join(text.split())
    return words if len(words) <= 90 else words[:89] + "…"


HOLIDAY_LANGUAGES = {"zh-Hant": "zh_TW", "zh-Hans": "zh_CN", "en": "en_US"}


def _holidays_in(config: Any, year: int, language: str) -> Any:
    """The year's public holidays named in the operator's language where the calendar has it."""
    import holidays as holidays_lib

    if not config.holiday_country:
        return {}
    try:
        return holidays_lib.country_holidays(
            config.holiday_country,
            subdiv=config.holiday_subdivision,
            years=[year],
            language=HOLIDAY_LANGUAGES.get(language),
        )
    except (NotImplementedError, KeyError):
        return holiday_calendar(config.holiday_country, config.holiday_subdivision, year)


@bp.get("/hours")
@login_required("admin")
def hours() -> Any:
    config = _config()
    year = utcnow().astimezone(config.timezone).year
    holidays: list[tuple[date, str]] = []
    for y in (year, year + 1):
        holidays += sorted(_holidays_in(config, y, current_language()).items())
    return render_template(
        "admin.html",
        page="hours",
        business_hours=[(d, config.business_hours.get(d)) for d in range(7)],
        described={lang: describe_hours(config, lang) for lang in LANGUAGES},
        holidays=holidays,
    )


@bp.get("/operators")
@login_required("admin")
def operators() -> Any:
    return render_template(
        "admin.html",
        page="operators",
        operators=g.db.scalars(
            select(Operator).order_by(Operator.active.desc(), Operator.email)
        ).all(),
        departments=g.db.scalars(select(Department).order_by(Department.code)).all(),
        roles=ROLES,
    )


def _operator_fields(op: Operator, form: Any) -> str | None:
    """Apply the form to `op`; an error message, or None."""
    role = form.get("role", op.role)
    if role not in ROLES:
        return _("Unknown role.")
    dept_code = form.get("department") or ""
    dept = (
        g.db.scalar(select(Department).where(Department.code == dept_code)) if dept_code else None
    )
    if role == "department" and dept is None:
        return _("Department staff need a department.")
    language = form.get("language", op.language or "zh-Hant")
    if language not in LANGUAGES:
        return _("Unknown language.")
    phone_raw = (form.get("phone") or "").strip()
    phone = normalize_phone(phone_raw, _config().phone_region) if phone_raw else None
    if phone_raw and phone is None:
        return _("The phone number is not valid.")
    before = (op.role, op.department_id)
    op.role, op.department_id, op.language, op.phone = (
        role,
        dept.id if dept else None,
        language,
        phone,
    )
    password = form.get("password") or ""
    if password:
        try:
            op.password_hash = hash_password(password)
        except ValueError:
            return _("A password needs at least 8 characters.")
    if op.id is not None and (password or before != (op.role, op.department_id)):
        end_sessions(op)  # signed-in sessions must not keep the old password's or role's rights
    return None


@bp.post("/operators")
@login_required("admin")
def create_operator() -> Any:
    email = (request.form.get("email") or "").strip().lower()
    name = (request.form.get("name") or "").strip()
    if "@" not in email or not name or not request.form.get("password"):
        flash(_("Email, name and password are required."), "error")
        return redirect(url_for("admin.operators"))
    op = Operator(
        email=email, name=name, role="operator", password_hash="", language="zh-Hant", active=True
    )
    error = _operator_fields(op, request.form)
    if error:
        flash(error, "error")
        return redirect(url_for("admin.operators"))
    g.db.add(op)
    audit.record(g.db, "operator_created", **who(), target=op.email, role_given=op.role)
    try:
        g.db.commit()
    except IntegrityError:
        g.db.rollback()
        flash(_("An operator with this email exists already."), "error")
        return redirect(url_for("admin.operators"))
    flash(_("Operator added."))
    return redirect(url_for("admin.operators"))


@bp.post("/operators/<int:operator_id>")
@login_required("admin")
def update_operator(operator_id: int) -> Any:
    op = g.db.get(Operator, operator_id)
    if op is None:
        abort(404)
    before = _audited_fields(op)
    password_before = op.password_hash
    error = _operator_fields(op, request.form)
    if error:
        g.db.rollback()
        flash(error, "error")
        return redirect(url_for("admin.operators"))
    active = request.form.get("active") == "1"
    me = current_operator()
    if not active and me is not None and op.id == me.id:
        g.db.rollback()
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.operators"))
    if op.active and not active:
        end_sessions(op)  # reactivating later does not bring old sessions back
    op.active = active
    after = _audited_fields(op)
    changed = {k: [before[k], v] for k, v in after.items() if before[k] != v}
    extra = {"password_changed": True} if op.password_hash != password_before else {}
    audit.record(g.db, "operator_changed", **who(), target=op.email, changed=changed, **extra)
    g.db.commit()
    flash(_("Operator updated."))
    return redirect(url_for("admin.operators"))


def _audited_fields(op: Operator) -> dict[str, Any]:
    """What the audit log compares before and after an operator is changed."""
    return {
        "role": op.role,
        "department": _dept_code(op.department_id),
        "active": op.active,
        "language": op.language,
        "phone": op.phone,
    }


def _dept_code(department_id: int | None) -> str | None:
    dept = g.db.get(Department, department_id) if department_id else None
    return dept.code if dept is not None else None


def _queue_depths() -> dict[str, Any]:
    """Jobs waiting per RQ queue, and failed jobs; an error string when Redis is unreachable."""
    settings = current_app.config["HOTLINE_SETTINGS"]
    if not settings.redis_url:
        return {"error": _("REDIS_URL is not set")}
    try:
        from rq import Queue

        from intake.redis_client import connect

        connection = connect(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        depths = {}
        for name in ("urgent", "default", "low"):
            queue = Queue(name, connection=connection)
            depths[name] = {"waiting": queue.count, "failed": queue.failed_job_registry.count}
        connection.close()
        return {"queues": depths}
    except Exception as exc:  # Redis down: the health page must still render and say so.
        return {"error": f"{type(exc).__name__}: {exc}"}


@bp.get("/health")
@login_required(*MANAGERS)
def health() -> Any:
    outbox_counts = dict(
        g.db.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all()
    )
    failed = g.db.scalars(
        select(Outbox).where(Outbox.status == "failed").order_by(Outbox.id.desc()).limit(100)
    ).all()
    channels = g.db.scalars(select(ChannelHealth).order_by(ChannelHealth.name)).all()
    rq = _queue_depths()
    problems = [
        _(
            "%(channel)s: %(status)s",
            channel=channel_name(c.name),
            status=health_status_label(c.status),
        )
        for c in channels
        if c.status not in HEALTHY or c.consecutive_failures
    ]
    if rq.get("error"):
        problems.append(_("The job queue cannot be reached."))
    if failed:
        problems.append(_("%(n)s jobs failed and wait for a retry.", n=len(failed)))
    return render_template(
        "admin.html",
        page="health",
        channels=channels,
        rq=rq,
        outbox_counts=outbox_counts,
        failed=failed,
        problems=problems,
        health_status_label=health_status_label,
        channel_name=channel_name,
        job_label=job_label,
        now=utcnow(),
    )


HEALTHY = ("ok", "standby")


def channel_name(name: str) -> str:
    """A ChannelHealth row's name for people: `imap:INBOX` is the IMAP mailbox INBOX."""
    kind, _sep, rest = name.partition(":")
    if kind == "imap":
        return _("Mailbox %(name)s (IMAP)", name=rest)
    if kind == "mail" and rest == "acknowledgements":
        return _("Acknowledgement emails")
    if kind == "smtp":
        return _("Mail received over SMTP")
    return name


def health_status_label(code: str) -> str:
    return {
        "ok": _("working"),
        "standby": _("standing by (another poller holds the mailbox)"),
        "silent": _("no mail for a long time"),
        "error": _("failing"),
        "open": _("paused after repeated failures"),
        "tripped": _("paused after repeated failures"),
        "breaker_open": _("paused after repeated failures"),
    }.get(code, _("needs a look"))


@bp.post("/outbox/<int:row_id>/retry")
@login_required(*MANAGERS)
def retry(row_id: int) -> Any:
    from intake.tickets import retry_failed

    g.db.commit()  # end this request's transaction: SQLite allows one writer at a time
    if retry_failed(current_app.extensions["hotline_sessions"], row_id):
        audit.record(g.db, "job_retried", **who(), target=f"outbox {row_id}")
        g.db.commit()
        flash(_("Job %(id)s will be retried.", id=row_id))
    else:
        flash(_("Job %(id)s is not failed; nothing to retry.", id=row_id), "error")
    return redirect(url_for("admin.health"))
