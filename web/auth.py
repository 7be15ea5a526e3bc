"""Sign-in for operators: argon2 password hashes, a session cookie, role checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from sqlalchemy import select

from intake.auth import verify_password
from intake.models import Operator

bp = Blueprint("auth", __name__)


def current_operator() -> Operator | None:
    if "operator" not in g:
        op_id = session.get("operator_id")
        g.operator = g.db.get(Operator, op_id) if op_id else None
        if g.operator is not None and not g.operator.active:
            g.operator = None
    return g.operator


def login_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        op = g.db.scalar(select(Operator).where(Operator.email == email))
        if op is not None and op.active and verify_password(op.password_hash, password):
            session.clear()
            session["operator_id"] = op.id
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
        error = "電子郵件或密碼不正確 / Wrong email or password"
    return render_template("login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
