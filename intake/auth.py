"""Operator passwords, hashed with argon2id."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("operator", "supervisor", "admin", "department")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash of a random password with our parameters, made once per process."""
    return _hasher.hash(secrets.token_urlsafe(24))


def verify_password_or_dummy(password_hash: str | None, password: str) -> bool:
    """`verify_password`, or the same argon2 work against a dummy hash when there is no account
    (or no usable hash), so a wrong password takes as long for an unknown email as for a real
    one: the answer's timing does not tell which accounts exist."""
    if not password_hash or not password_hash.startswith("$argon2"):
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)
