"""Ordered routing rules: the first rule whose every condition holds decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from intake.calendar import add_business_minutes, is_open
from intake.classify import find_keywords
from intake.config import HotlineConfig, RoutingRule
from intake.models import Building, Event, Ticket, Unit


@dataclass(frozen=True)
class TicketFacts:
    """What rules may look at, taken from a ticket (so rules can also be replayed offline)."""

    category: str
    priority: str
    channel: str
    text: str
    building: str | None
    created_at: datetime


@dataclass(frozen=True)
class RoutingDecision:
    rule: str
    department: str
    priority: str
    sla_profile: str | None
    notify: tuple[str, ...]
    reasons: tuple[str, ...] = field(default=())
    matched: tuple[tuple[str, str], ...] = field(default=())
    """What matched, as (condition, value) pairs a reader can put in words in any language."""

    def explain(self) -> str:
        return (
            f"rule {self.rule!r} matched: " + "; ".join(self.reasons)
            if self.reasons
            else f"rule {self.rule!r} matched every ticket"
        )


ENGLISH = {
    "category": "category is {}",
    "priority": "priority is {}",
    "channel": "channel is {}",
    "building": "building is {}",
    "keywords": "text mentions {}",
    "hours": "received {}",
}
HOURS_ENGLISH = {"business": "in business hours", "after_hours": "after hours"}


def _check(
    rule: RoutingRule, facts: TicketFacts, config: HotlineConfig
) -> list[tuple[str, str]] | None:
    """What of the rule's `when` matched, as (condition, value) pairs; None when it does not."""
    matched: list[tuple[str, str]] = []
    when = rule.when
    if when.category is not None:
        if facts.category not in when.category:
            return None
        matched.append(("category", facts.category))
    if when.priority is not None:
        if facts.priority not in when.priority:
            return None
        matched.append(("priority", facts.priority))
    if when.channel is not None:
        if facts.channel not in when.channel:
            return None
        matched.append(("channel", facts.channel))
    if when.building is not None:
        if facts.building not in when.building:
            return None
        matched.append(("building", str(facts.building)))
    if when.keywords is not None:
        hits, _ = find_keywords(facts.text, {"rule": when.keywords}, config)
        if not hits:
            return None
        matched.append(("keywords", ", ".join(dict.fromkeys(h.keyword for h in hits))))
    if when.hours is not None:
        open_now = is_open(facts.created_at, config)
        if (when.hours == "business") != open_now:
            return None
        matched.append(("hours", "business" if open_now else "after_hours"))
    return matched


def _english(matched: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(
        ENGLISH[kind].format(HOURS_ENGLISH.get(value, value) if kind == "hours" else value)
        for kind, value in matched
    )


def decide(facts: TicketFacts, config: HotlineConfig) -> RoutingDecision:
    for rule in config.routing_rules:
        matched = _check(rule, facts, config)
        if matched is None:
            continue
        then = rule.then
        priority = min(facts.priority, then.priority or facts.priority)
        return RoutingDecision(
            rule=rule.name,
            department=then.department,
            priority=priority,
            sla_profile=then.sla_profile,
            notify=then.notify,
            reasons=_english(matched),
            matched=tuple(matched),
        )
    return RoutingDecision(
        "default", "customer_service", facts.priority, None, (), ("no rule matched",)
    )


def sla_due_times(
    start: datetime, profile_name: str | None, config: HotlineConfig
) -> tuple[datetime | None, datetime | None]:
    from datetime import timedelta

    profile = config.sla_profiles.get(profile_name or "")
    if profile is None:
        return None, None
    if profile.business_time:
        return (
            add_business_minutes(start, profile.first_response_minutes, config),
            add_business_minutes(start, profile.resolution_minutes, config),
        )
    return start + timedelta(minutes=profile.first_response_minutes), start + timedelta(
        minutes=profile.resolution_minutes
    )


def ticket_facts_query() -> Select[*tuple[Any, ...]]:
    """What routing reads of a ticket, in one statement (the job runs once per ticket)."""
    return (
        select(
            Ticket.id,
            Ticket.ref,
            Ticket.status,
            Ticket.department_id,
            Ticket.category,
            Ticket.priority,
            Ticket.channel,
            Ticket.subject,
            Ticket.description,
            Ticket.created_at,
            Building.code.label("building"),
        )
        .outerjoin(Unit, Unit.id == Ticket.unit_id)
        .outerjoin(Building, Building.id == Unit.building_id)
    )


def ticket_facts(row: Row[*tuple[Any, ...]]) -> TicketFacts:
    return TicketFacts(
        category=row.category,
        priority=row.priority,
        channel=row.channel,
        text=f"{row.subject}\n{row.description}",
        building=row.building,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class Replayed:
    """A recent ticket: how it was routed (None if never) and where these rules would send it."""

    ref: str
    facts: TicketFacts
    then: dict[str, Any] | None
    decision: RoutingDecision


def replay(session: Session, config: HotlineConfig, limit: int) -> list[Replayed]:
    """Rules replayed on the most recent tickets, changing nothing: the dry run of an edit."""
    replayed = []
    for row in session.execute(ticket_facts_query().order_by(Ticket.id.desc()).limit(limit)):
        routed = session.scalar(
            select(Event.data)
            .where(Event.ticket_id == row.id, Event.kind == "routed")
            .order_by(Event.id.desc())
            .limit(1)
        )
        facts = ticket_facts(row)
        replayed.append(Replayed(row.ref or "", facts, routed, decide(facts, config)))
    return replayed
