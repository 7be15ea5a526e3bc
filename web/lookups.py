"""Per-process lookups of rows that rarely change, kept on the app so each request skips a query.

A department row, once created, keeps its id for good: only found codes are remembered, and a code
not yet known asks the database again (its row may have been created since).
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import Department


def department_ids(session: Session, codes: Sequence[str]) -> list[int]:
    """The ids of the departments with these codes; unknown codes have none."""
    known: dict[str, int] = current_app.extensions.setdefault("hotline_department_ids", {})
    missing = [code for code in codes if code not in known]
    if missing:
        found = session.execute(
            select(Department.code, Department.id).where(Department.code.in_(missing))
        )
        known.update({code: ident for code, ident in found})
    return [known[code] for code in codes if code in known]
