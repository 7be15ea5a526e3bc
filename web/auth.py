"""Sign-in for operators: argon2 password hashes, a session cookie, roles, a login rate limit.

Roles: `operator` works the queue; `supervisor` also sees reports, imports residents and the health
page; `admin` also administers; `department` staff see only their own department's tickets.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, false, func, select
from sqlalchemy.sql import Select

from intake import audit
from intake.auth import verify_password_or_dummy
from intake.constants import LANGUAGES
from intake.models import LoginAttempt, Operator, Ticket, utcnow
from web.signed_in import current_operator, remember_sign_in

bp = Blueprint("auth", __name__)

STAFF = ("operator", "supervisor", "admin")
MANAGERS = ("supervisor", "admin")
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 30


def end_sessions(operator: Operator) -> None:
    """Every session signed in as `operator` ends at its next request, in every web process: on
    sign-out, and when the password, role or department changes (the caller commits)."""
    operator.session_generation = (operator.session_generation or 0) + 1


def login_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Sign-in required; with `roles`, only those roles (others get 403)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            op = current_operator()
            if op is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if roles and op.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def visible_tickets(query: Select[*tuple[Any, ...]] | None = None) -> Select[*tuple[Any, ...]]:
    """Department staff see only their department's tickets; everybody else sees all. Fails
    closed: department staff without a department (or an unknown role) see nothing — never the
    unrouted tickets that `department_id IS NULL` would match."""
    query = query if query is not None else select(Ticket)
    op = current_operator()
    if op is None:
        return query.where(false())
    if op.role == "department":
        if op.department_id is None:
            return query.where(false())
        query = query.where(Ticket.department_id == op.department_id)
    elif op.role not in STAFF:
        return query.where(false())
    return query


def can_see(ticket: Ticket) -> bool:
    op = current_operator()
    if op is None:
        return False
    if op.role == "department":
        return op.department_id is not None and ticket.department_id == op.department_id
    return op.role in STAFF


def actor() -> str:
    op = current_operator()
    return op.email if op is not None else "system"


def who() -> audit.Actor:
    """The audit fields for the signed-in operator: actor, role and source address."""
    op = current_operator()
    return {
        "actor": op.email if op is not None else "anonymous",
        "role": op.role if op is not None else None,
        "source": _client_address(),
    }


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target:
        return url_for("queue.index")
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return url_for("queue.index")
    return target


def _client_address() -> str:
    """The peer address; behind a proxy, configure ProxyFix so this is the client's."""
    return (request.remote_addr or "unknown")[:64]


# Throttling (counted in `login_attempt`, shared by every web process), over ATTEMPT_WINDOW:
# - a source address: MAX_FAILURES_PER_ADDRESS failures, whatever the accounts, then 429;
# - an account from one address: MAX_FAILURES_PER_ACCOUNT, then 429 for that address only;
# - an account from everywhere (a distributed guess): MAX_FAILURES_PER_ACCOUNT_ANYWHERE, then
#   only browsers that have signed in to it before (the signed `hl_device` cookie) may try.
# A browser with that cookie counts its own failures only (MAX_FAILURES_PER_ACCOUNT): other
# people's guesses never lock an operator out of a browser they use, and a new source is only
# held back by the account-wide limit, which one attacking address cannot reach alone.
MAX_FAILURES_PER_ACCOUNT_ANYWHERE = 20
DEVICE_COOKIE = "hl_device"
DEVICE_COOKIE_DAYS = 90


def _account_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="hotline-sign-in-device")


def _known_device(email: str) -> str | None:
    """The device id of this browser's cookie when it signed in to `email` before, else None."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 500:
        return None
    try:
        data = _device_serializer().loads(raw, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("account") != _account_digest(email):
        return None
    device = data.get("device")
    return device if isinstance(device, str) else None


def _failure_keys(email: str, device: str | None) -> list[str]:
    if device is not None:
        return [f"device:{device}", f"address:{_client_address()}"]
    account = _account_digest(email)
    return [
        f"account:{account}",
        f"pair:{account}:{_client_address()}",
        f"address:{_client_address()}",
    ]


def _recent_failures(key: str) -> int:
    since = utcnow() - ATTEMPT_WINDOW
    return int(
        g.db.scalar(
            select(func.count()).where(LoginAttempt.key == key, LoginAttempt.created_at >= since)
        )
        or 0
    )


def _throttled(email: str, device: str | None) -> bool:
    if device is not None:
        return _recent_failures(f"device:{device}") >= MAX_FAILURES_PER_ACCOUNT
    account = _account_digest(email)
    return (
        _recent_failures(f"address:{_client_address()}") >= MAX_FAILURES_PER_ADDRESS
        or _recent_failures(f"pair:{account}:{_client_address()}") >= MAX_FAILURES_PER_ACCOUNT
        or _recent_failures(f"account:{account}") >= MAX_FAILURES_PER_ACCOUNT_ANYWHERE
    )


def _record_failure(email: str, device: str | None) -> None:
    now = utcnow()
    g.db.add_all([LoginAttempt(key=key, created_at=now) for key in _failure_keys(email, device)])
    g.db.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - 2 * ATTEMPT_WINDOW))
    g.db.commit()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.args.get("lang") in LANGUAGES:
        session["language"] = request.args["lang"]
    error = None
    status = 200
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()[:254]
        password = (request.form.get("password") or "")[:1024]
        device = _known_device(email)
        if _throttled(email, device):
            error = _("Too many failed sign-ins. Wait 15 minutes and try again.")
            status = 429
        else:
            op = g.db.scalar(select(Operator).where(Operator.email == email))
            # The same argon2 work whether or not the account exists (no timing oracle).
            ok = verify_password_or_dummy(op.password_hash if op else None, password)
            if op is not None and op.active and ok:
                g.db.execute(
                    delete(LoginAttempt).where(
                        LoginAttempt.key.in_(
                            [
                                f"pair:{_account_digest(email)}:{_client_address()}",
                                *([f"device:{device}"] if device else []),
                            ]
                        )
                    )
                )
                audit.record(
                    g.db, "sign_in", actor=op.email, role=op.role, source=_client_address()
                )
                g.db.commit()
                session.clear()
                remember_sign_in(session, op)
                session.permanent = True
                response = redirect(_safe_next(request.args.get("next")))
                token = _device_serializer().dumps(
                    {
                        "account": _account_digest(email),
                        "device": device or secrets.token_urlsafe(16),
                    }
                )
                response.set_cookie(
                    DEVICE_COOKIE,
                    token,
                    max_age=DEVICE_COOKIE_DAYS * 86400,
                    httponly=True,
                    secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                    samesite="Lax",
                )
                return response
            audit.record(g.db, "sign_in_failed", actor=email or "-", source=_client_address())
            _record_failure(email, device)
            error = _("Wrong email or password.")
            status = 401
    return render_template("login.html", error=error), status


@bp.post("/logout")
def logout() -> Any:
    op = current_operator()
    if op is not None:
        end_sessions(op)  # the cookie, if kept or copied, no longer signs anyone in
        from intake import desk

        if op.role in STAFF:
            desk.set_state(g.db, op, "away")  # signed out: no calls are offered
        audit.record(g.db, "sign_out", actor=op.email, role=op.role, source=_client_address())
        g.db.commit()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/language")
@login_required()
def set_language() -> Any:
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        abort(400)
    op = current_operator()
    assert op is not None
    op.language = language
    g.db.commit()
    flash(_("Language changed."))
    return redirect(_safe_next(request.form.get("next")))


def install(app: Any) -> None:
    """Context every template needs: the operator, the configuration and role helpers."""

    @app.context_processor
    def _operator_context() -> dict[str, Any]:
        op = current_operator() if "db" in g else None
        return {
            "operator": op,
            "config": current_app.config["HOTLINE_SETTINGS"].config,
            "is_manager": op is not None and op.role in MANAGERS,
            "is_admin": op is not None and op.role == "admin",
            "is_staff": op is not None and op.role in STAFF,
        }
