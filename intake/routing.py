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

    def explain(self) -> str:
        return (
            f"rule {self.rule!r} matched: " + "; ".join(self.reasons)
            if self.reasons
            else f"rule {self.rule!r} matched every ticket"
        )


def _check(rule: RoutingRule, facts: TicketFacts, config: HotlineConfig) -> list[str] | None:
    reasons: list[str] = []
    when: dict[str, Any] = rule.when
    if "category" in when:
        if facts.category not in when["category"]:
            return None
        reasons.append(f"category is {facts.category}")
    if "priority" in when:
        if facts.priority not in when["priority"]:
            return None
        reasons.append(f"priority is {facts.priority}")
    if "channel" in when:
        if facts.channel not in when["channel"]:
            return None
        reasons.append(f"channel is {facts.channel}")
    if "building" in when:
        if facts.building not in when["building"]:
            return None
        reasons.append(f"building is {facts.building}")
    if "keywords" in when:
        hits, _ = find_keywords(facts.text, {"rule": tuple(when["keywords"])}, config)
        if not hits:
            return None
        reasons.append("text mentions " + ", ".join(dict.fromkeys(h.keyword for h in hits)))
    if "hours" in when:
        open_now = is_open(facts.created_at, config)
        if (when["hours"] == "business") != open_now:
            return None
        reasons.append("received in business hours" if open_now else "received after hours")
    return reasons


def decide(facts: TicketFacts, config: HotlineConfig) -> RoutingDecision:
    for rule in config.routing_rules:
        reasons = _check(rule, facts, config)
        if reasons is None:
            continue
        then = rule.then
        priority = min(facts.priority, then.get("priority", facts.priority))
        return RoutingDecision(
            rule=rule.name,
            department=then["department"],
            priority=priority,
            sla_profile=then.get("sla_profile"),
            notify=tuple(then.get("notify") or ()),
            reasons=tuple(reasons),
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


def ticket_facts_query() -> Select[Any]:
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


def ticket_facts(row: Row[Any]) -> TicketFacts:
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
