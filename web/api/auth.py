"""Per-client API tokens: only a sha256 of each token is stored; the token is shown once.

A client's role names its scopes. `department_id` restricts the tickets (and their callbacks) it
may see or change, as for department staff in the console.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from intake.models import ApiClient, Department, utcnow

TOKEN_PREFIX = "hlt_"
_OPERATOR_SCOPES = frozenset(
    {
        "tickets:read",
        "tickets:write",
        "callbacks:read",
        "residents:read",
        "residents:write",
        "open311",
    }
)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "readonly": frozenset({"tickets:read", "callbacks:read", "residents:read"}),
    "operator": _OPERATOR_SCOPES,
    "open311": frozenset({"open311"}),
    # A supervisor's system (a building-management console, say): an operator's scopes, and it
    # declares, updates and resolves building-wide incidents.
    "supervisor": _OPERATOR_SCOPES | {"incidents:write"},
}
ROLES = tuple(ROLE_SCOPES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewClient:
    client: ApiClient
    token: str


def create_client(
    session: Session, name: str, role: str = "operator", department: str | None = None
) -> NewClient:
    """A new client and its token (the only time the token exists outside the caller)."""
    if role not in ROLE_SCOPES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    name = name.strip()
    if not name:
        raise ValueError("a client needs a name")
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise ValueError(f"an API client named {name!r} already exists")
    dept_id = None
    if department:
        dept = session.scalar(select(Department).where(Department.code == department))
        if dept is None:
            raise ValueError(f"unknown department {department!r}")
        dept_id = dept.id
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[:12],
        role=role,
        department_id=dept_id,
        active=True,
        created_at=utcnow(),
    )
    session.add(client)
    session.flush()
    return NewClient(client=client, token=token)


@dataclass(frozen=True)
class Caller:
    """What a request needs of its client's row, read as plain columns rather than an ORM object."""

    id: int
    name: str
    role: str
    department_id: int | None
    last_used_at: datetime | None


@cache
def _by_token_hash() -> Select[*tuple[Any, ...]]:
    """Built once: constructing even this small statement costs about as much as running it."""
    return select(
        ApiClient.id,
        ApiClient.name,
        ApiClient.role,
        ApiClient.department_id,
        ApiClient.last_used_at,
    ).where(ApiClient.token_hash == bindparam("token_hash"), ApiClient.active.is_(True))


def client_for_token(session: Session, token: str | None) -> Caller | None:
    """The active client owning `token`; lookup is by hash, so no timing leak on the secret."""
    if not token or len(token) > 200:
        return None
    row = session.connection().execute(_by_token_hash(), {"token_hash": hash_token(token)}).first()
    return Caller(*row) if row is not None else None


def scopes(client: Caller) -> frozenset[str]:
    return ROLE_SCOPES.get(client.role, frozenset())
