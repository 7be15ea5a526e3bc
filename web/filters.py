"""The queue's filters, order and keyset pagination, shared by the queue page and its live updates.

Default: open tickets, most urgent first (priority, then resolution due time, then id). Keyset
pagination keeps an operator's place while new tickets arrive: the cursor names the last row seen,
never an offset. The default order matches the partial index `ix_ticket_open_urgency`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter
from werkzeug.datastructures import MultiDict

from intake.constants import CHANNELS, OPEN_STATUSES, PRIORITIES, STATUSES
from intake.models import Building, Department, Operator, Resident, Ticket, Unit, utcnow
from intake.sla import AT_RISK_WINDOW

SLA_STATES = ("at_risk", "breached")
SORTS = ("urgency", "newest")
_MOMENT = Ticket.resolution_due_at.type
FILTER_KEYS = (
    "status",
    "channel",
    "category",
    "department",
    "priority",
    "building",
    "sla",
    "assigned",
    "q",
    "sort",
)


@dataclass
class QueueFilter:
    statuses: list[str] = field(default_factory=lambda: list(OPEN_STATUSES))
    channels: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)
    priorities: list[str] = field(default_factory=list)
    buildings: list[str] = field(default_factory=list)
    sla: str = ""
    assigned: str = ""
    q: str = ""
    sort: str = "urgency"

    @classmethod
    def from_args(cls, args: MultiDict[str, str]) -> QueueFilter:
        """Unknown values are dropped, never trusted."""
        statuses = [s for s in args.getlist("status") if s in (*STATUSES, "all")]
        if "all" in statuses:
            statuses = []
        elif not statuses:
            statuses = list(OPEN_STATUSES)
        return cls(
            statuses=statuses,
            channels=[c for c in args.getlist("channel") if c in CHANNELS],
            categories=[c for c in args.getlist("category") if c][:20],
            departments=[d for d in args.getlist("department") if d][:20],
            priorities=[p for p in args.getlist("priority") if p in PRIORITIES],
            buildings=[b for b in args.getlist("building") if b][:20],
            sla=args.get("sla", "") if args.get("sla") in SLA_STATES else "",
            assigned=args.get("assigned", "") if args.get("assigned") in ("me", "none") else "",
            q=(args.get("q") or "").strip()[:100],
            sort=args.get("sort", "urgency") if args.get("sort") in SORTS else "urgency",
        )

    def to_query_string(self) -> str:
        pairs: list[tuple[str, str]] = []
        if self.statuses != list(OPEN_STATUSES):
            pairs += [("status", s) for s in self.statuses] or [("status", "all")]
        pairs += [("channel", c) for c in self.channels]
        pairs += [("category", c) for c in self.categories]
        pairs += [("department", d) for d in self.departments]
        pairs += [("priority", p) for p in self.priorities]
        pairs += [("building", b) for b in self.buildings]
        for key in ("sla", "assigned", "q"):
            if getattr(self, key):
                pairs.append((key, getattr(self, key)))
        if self.sort != "urgency":
            pairs.append(("sort", self.sort))
        return urlencode(pairs)

    def apply(
        self,
        query: Select[*tuple[Any, ...]],
        operator: Operator | None,
        department_ids: Sequence[int] = (),
        now: datetime | None = None,
    ) -> Select[*tuple[Any, ...]]:
        """The filter's conditions; `department_ids` are the ids of `self.departments`.

        Ids rather than a subquery on the codes: only with literal ids does PostgreSQL always
        range-scan `ix_ticket_department_urgency`.
        """
        moments = time_params(now or utcnow())
        now_param = bindparam("now", moments["now"], type_=_MOMENT)
        soon = bindparam("at_risk_until", moments["at_risk_until"], type_=_MOMENT)
        if self.statuses:
            query = query.where(Ticket.status.in_(inline("statuses", self.statuses)))
        if self.channels:
            query = query.where(Ticket.channel.in_(inline("channels", self.channels)))
        if self.categories:
            query = query.where(Ticket.category.in_(self.categories))
        if self.priorities:
            query = query.where(Ticket.priority.in_(inline("priorities", self.priorities)))
        if self.departments:
            query = query.where(Ticket.department_id.in_(inline("departments", department_ids)))
        if self.buildings:
            query = query.where(
                Ticket.unit_id.in_(
                    select(Unit.id)
                    .join(Building)
                    .where(Building.code.in_(self.buildings))
                    .correlate(None)
                )
            )
        if self.sla:
            query = query.where(Ticket.status.in_(OPEN_STATUSES))
        if self.sla == "breached":
            query = query.where(
                or_(
                    Ticket.resolution_due_at < now_param,
                    and_(
                        Ticket.first_responded_at.is_(None),
                        Ticket.first_response_due_at < now_param,
                    ),
                )
            )
        elif self.sla == "at_risk":
            query = query.where(
                or_(
                    Ticket.resolution_due_at.between(now_param, soon),
                    and_(
                        Ticket.first_responded_at.is_(None),
                        Ticket.first_response_due_at.between(now_param, soon),
                    ),
                )
            )
        if self.assigned == "me" and operator is not None:
            query = query.where(Ticket.assignee_id == operator.id)
        elif self.assigned == "none":
            query = query.where(Ticket.assignee_id.is_(None))
        if self.q:
            needle = f"%{self.q.replace('%', '').replace('_', '')}%"
            query = query.where(
                or_(
                    Ticket.ref == self.q.upper(),
                    Ticket.subject.ilike(needle),
                    Ticket.contact_phone.like(needle),
                    Ticket.contact_email.ilike(needle),
                )
            )
        return query

    def order(self, query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
        if self.sort == "newest":
            return query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        return query.order_by(
            Ticket.priority, Ticket.resolution_due_at.asc().nulls_last(), Ticket.id
        )

    def after(
        self, query: Select[*tuple[Any, ...]], cursor: str | None
    ) -> Select[*tuple[Any, ...]]:
        """Rows strictly after the cursor in this filter's order; the cursor's values are named
        parameters (`cursor_params`), so one statement serves every page of the same shape."""
        values = self.cursor_params(cursor)
        if not values:
            return query
        ident: BindParameter[int] = bindparam("after_id", values["after_id"])
        if self.sort == "newest":
            created = bindparam("after_created", values["after_created"], type_=_MOMENT)
            return query.where(
                or_(
                    Ticket.created_at < created,
                    and_(Ticket.created_at == created, Ticket.id < ident),
                )
            )
        priority: BindParameter[str] = bindparam("after_priority", values["after_priority"])
        if "after_due" not in values:
            later_in_priority = and_(Ticket.resolution_due_at.is_(None), Ticket.id > ident)
        else:
            due = bindparam("after_due", values["after_due"], type_=_MOMENT)
            later_in_priority = or_(
                Ticket.resolution_due_at > due,
                Ticket.resolution_due_at.is_(None),
                and_(Ticket.resolution_due_at == due, Ticket.id > ident),
            )
        # The bare `priority >= …` is redundant but lets the index range-scan from the cursor on.
        return query.where(
            Ticket.priority >= priority,
            or_(Ticket.priority > priority, and_(Ticket.priority == priority, later_in_priority)),
        )

    def cursor_params(self, cursor: str | None) -> dict[str, Any]:
        """The cursor's values for this sort; a cursor of another shape is ignored (first page)."""
        key = decode_cursor(cursor)
        if key is None:
            return {}
        if self.sort == "newest":
            if len(key) != 2 or key[0] is None:
                return {}
            return {"after_created": key[0], "after_id": key[1]}
        if len(key) != 3:
            return {}
        values = {"after_priority": key[0], "after_id": key[2]}
        if key[1] is not None:
            values["after_due"] = key[1]
        return values

    def statement_key(self) -> tuple[Any, ...]:
        """Everything of this filter that shapes the SQL."""
        return (
            tuple(self.statuses),
            tuple(self.channels),
            tuple(self.categories),
            tuple(self.departments),
            tuple(self.priorities),
            tuple(self.buildings),
            self.sla,
            self.assigned,
            self.q,
            self.sort,
        )

    def cursor_for(self, ticket: Ticket | Row[*tuple[Any, ...]]) -> str:
        if self.sort == "newest":
            key: list[Any] = [ticket.created_at.isoformat(), ticket.id]
        else:
            due = ticket.resolution_due_at
            key = [ticket.priority, due.isoformat() if due else None, ticket.id]
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def time_params(now: datetime) -> dict[str, datetime]:
    """The moments the SLA filters compare with, as the statement's named parameters."""
    return {"now": now, "at_risk_until": now + AT_RISK_WINDOW}


def inline(name: str, value: Any) -> BindParameter[Any]:
    """A checked value written into the SQL text rather than sent as a parameter.

    psycopg prepares a statement it has run five times; PostgreSQL then plans it once, but only
    while the plan needs no parameter values. A partial index needs the statuses to match its
    predicate, and with `LIMIT $1` the planner cannot tell a generic plan is as good, so without
    this every request pays for planning a six-table join (1–3 ms here, more than running it).
    """
    return bindparam(name, value, literal_execute=True)


MAX_CURSOR_ID = 2**31 - 1
MAX_CURSOR_LENGTH = 200


def _cursor_moment(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a moment")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a cursor's moment has an offset")
    return moment


def _cursor_id(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CURSOR_ID:
        raise ValueError("not an id")
    return value


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """A cursor this console issued, with its values typed and in range: `[priority, due or None,
    id]` or `[created, id]`; anything else (another shape, a huge or non-integer id, a moment
    without an offset, a float like 1e999) is None, and the page starts from the top."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, list):
            return None
        if len(key) == 3:
            if key[0] not in PRIORITIES:
                return None
            due = _cursor_moment(key[1]) if key[1] is not None else None
            return [key[0], due, _cursor_id(key[2])]
        if len(key) == 2:
            return [_cursor_moment(key[0]), _cursor_id(key[1])]
        return None
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None


def with_names(query: Select[*tuple[Any, ...]], unit_id: Any) -> Select[*tuple[Any, ...]]:
    """The ticket joined to what a list shows by name: its department, assignee, resident, and the
    unit (`unit_id`: the ticket's own or its resident's) with its building, each optional."""
    return (
        query.select_from(Ticket)
        .outerjoin(Department, Department.id == Ticket.department_id)
        .outerjoin(Operator, Operator.id == Ticket.assignee_id)
        .outerjoin(Resident, Resident.id == Ticket.resident_id)
        .outerjoin(Unit, Unit.id == unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
    )


_STATEMENTS: dict[Hashable, Select[*tuple[Any, ...]]] = {}
STATEMENTS_KEPT = 512


def page(
    connection: Connection,
    build: Callable[[], Select[*tuple[Any, ...]]],
    flt: QueueFilter,
    cursor: str | None,
    size: int,
    *,
    key: Hashable,
    now: datetime | None = None,
) -> tuple[Sequence[Row[*tuple[Any, ...]]], str | None]:
    """One page of rows and the cursor of the next page (None on the last page).

    `build()` gives the filtered query; it runs once per `key` (what besides the filter shapes
    that query: the surface, the caller's scope) and filter: building a statement, and matching a
    new statement's columns to the cached compilation, cost more than running it. The time and
    the cursor's values go as parameters. The rows need the order's columns under the ticket's
    names (priority, resolution_due_at, created_at, id).
    """
    after = flt.cursor_params(cursor)
    statement_key = (key, flt.statement_key(), tuple(sorted(after)), size)
    query = _STATEMENTS.get(statement_key)
    if query is None:
        if len(_STATEMENTS) >= STATEMENTS_KEPT:
            _STATEMENTS.clear()
        query = flt.order(flt.after(build(), cursor)).limit(inline("page_size", size + 1))
        _STATEMENTS[statement_key] = query
    params = {**time_params(now or utcnow()), **after}
    rows = connection.execute(query, params).all()
    if len(rows) > size:
        return rows[:size], flt.cursor_for(rows[size - 1])
    return rows, None
