"""Who is signed in to the console: the session's operator, while their password and sessions hold."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from flask import abort, g, session

from intake.models import Operator


def signed_in_operator() -> Operator:
    """The operator of a view behind `login_required`, where there always is one."""
    operator = current_operator()
    if operator is None:
        abort(401)
    return operator


def current_operator() -> Operator | None:
    """The signed-in operator (None when nobody is, or their sessions were ended), once a request."""
    if "operator" not in g:
        op_id = session.get("operator_id")
        operator = g.db.get(Operator, op_id) if op_id else None
        if operator is not None and (
            not operator.active
            or session.get("auth_epoch") != session_epoch(operator)
            or session.get("auth_generation") != operator.session_generation
        ):
            operator = None
        g.operator = operator
    return g.operator


def remember_sign_in(store: MutableMapping[str, Any], operator: Operator) -> None:
    """What a session keeps of a sign-in: who, and the password and session generation it saw."""
    store["operator_id"] = operator.id
    store["auth_epoch"] = session_epoch(operator)
    store["auth_generation"] = operator.session_generation


def session_epoch(operator: Operator) -> str:
    """Changes when the password changes, so old sessions end with it."""
    return operator.password_hash[-16:]
