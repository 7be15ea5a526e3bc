"""Ordered routing rules: the first rule whose every condition holds decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intake.calendar import add_business_minutes, is_open
from intake.classify import find_keywords
from intake.config import HotlineConfig, RoutingRule


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
