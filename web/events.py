"""A timeline event in the operator's language.

Events are stored with a machine `kind`, structured `data` and an English `message` for logs and
the API. The console shows the kind's name and, where the data allows, a sentence built from it
in the operator's language — "The system routed it by the rule “lift and water outages” to
Engineering, priority P2: the text mentions lift." Free text a person wrote (a note, a resolution)
is shown as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from intake.config import RuleActions, RuleConditions
from intake.models import Event
from web.i18n import current_language
from web.labels import cached_labels, channel_label, purpose_label, status_label

PERSON_TEXT = ("note_added", "resolution_note", "public_note")


def _event_labels() -> dict[str, str]:
    return {
        "created": _("Ticket created"),
        "routed": _("Routed"),
        "linked": _("Linked to another ticket"),
        "filed_automatic": _("Filed automatically"),
        "interaction_added": _("New contact from the resident"),
        "status_changed": _("Status changed"),
        "reopened": _("Reopened"),
        "assigned": _("Assigned"),
        "category_changed": _("Category changed"),
        "priority_changed": _("Priority changed"),
        "department_changed": _("Department changed"),
        "resident_linked": _("Resident linked"),
        "unit_linked": _("Unit linked"),
        "note_added": _("Internal note"),
        "resolution_note": _("Resolution note"),
        "public_note": _("Answer to the resident (public)"),
        "merged": _("Merged"),
        "merged_in": _("Duplicate merged in"),
        "reply_queued": _("Reply queued"),
        "operator_call_requested": _("Call to the resident requested"),
        "callback_scheduled": _("Callback scheduled"),
        "callback_reused": _("Callback already owed"),
        "callback_rescheduled": _("Callback rescheduled"),
        "callback_attempt": _("Callback attempt"),
        "callback_dialled": _("Callback dialled"),
        "callback_needs_operator": _("Callback needs an operator"),
        "callback_claimed": _("Callback taken"),
        "callback_released": _("Callback released"),
        "callback_cancelled": _("Callback cancelled"),
        "follow_up_emailed": _("Follow-up questions emailed"),
        "follow_up_fixed": _("Resident confirms it is fixed"),
        "follow_up_not_fixed": _("Resident says it is not fixed"),
        "survey_answered": _("Satisfaction score"),
        "department_notified": _("Department notified"),
        "notify_department": _("Department notified"),
        "sla_warning": _("SLA warning"),
        "escalated": _("Escalated"),
        "page_started": _("On-call page started"),
        "page_called": _("On-call engineer called"),
        "page_acknowledged": _("On-call page acknowledged"),
        "page_unacknowledged": _("On-call page unanswered"),
        "page_escalated": _("On-call page escalated"),
        "on_call_answered": _("On-call engineer answered"),
        "on_call_taken": _("On-call engineer took the emergency"),
        "call_answered": _("Call answered at the desk"),
        "call_attached": _("Live call added to this ticket"),
        "call_handled": _("Call ended at the desk"),
        "call_transfer_requested": _("Transfer requested"),
        "call_transferred": _("Call transferred"),
        "call_transfer_failed": _("Transfer not taken"),
        "email_failed": _("Email could not be delivered"),
        "email_bounced": _("Email bounced"),
        "sms_failed": _("SMS could not be delivered"),
        "ack_suppressed": _("Acknowledgement not sent"),
        "reply_suppressed": _("Automatic message not sent"),
        "incident_linked": _("Linked to a building incident"),
        "incident_unlinked": _("Taken out of a building incident"),
    }


def event_label(kind: str) -> str:
    return cached_labels(_event_labels).get(kind, _("Event"))


def _config() -> Any:
    return current_app.config["HOTLINE_SETTINGS"].config


def category_name(code: str | None) -> str:
    """A category's name in the operator's language ("—" when there is none)."""
    if not code:
        return "—"
    category = _config().category(code)
    return category.names.get(current_language(), code) if category else code


def department_name(code: str | None) -> str:
    if not code:
        return _("no department")
    department = _config().department(code)
    return department.names.get(current_language(), code) if department else code


def rule_title(name: str) -> str:
    rule = _config().rule(name)
    return rule.title(current_language()) if rule else name


def language_name(code: str) -> str:
    return {
        "zh-Hant": _("Traditional Chinese"),
        "zh-Hans": _("Simplified Chinese"),
        "en": _("English"),
        "yue": _("Cantonese"),
    }.get(code, code)


def condition(kind: str, value: str) -> str:
    """One matched condition of a routing rule, as words."""
    if kind == "category":
        return _("the category is %(name)s", name=category_name(value))
    if kind == "priority":
        return _("the priority is %(p)s", p=value)
    if kind == "channel":
        return _("it came by %(channel)s", channel=channel_label(value))
    if kind == "building":
        return _("the building is %(b)s", b=value)
    if kind == "keywords":
        return _("the text mentions %(words)s", words=value)
    if kind == "hours":
        return _("it came in business hours") if value == "business" else _("it came after hours")
    return value


def _created(data: dict[str, Any]) -> str:
    return _(
        "Ticket opened: %(category)s, priority %(priority)s, in %(language)s.",
        category=category_name(data.get("category")),
        priority=data.get("priority", "—"),
        language=language_name(str(data.get("language", ""))),
    )


def _routed(data: dict[str, Any]) -> str:
    matched = [condition(str(k), str(v)) for k, v in data.get("matched") or []]
    rule = str(data.get("rule") or "")
    if rule == "default":
        sentence = _(
            "No routing rule matched; sent to %(department)s, priority %(priority)s.",
            department=department_name(data.get("department")),
            priority=data.get("priority", "—"),
        )
        return sentence
    sentence = _(
        "The system routed it by the rule “%(rule)s” to %(department)s, priority %(priority)s",
        rule=rule_title(rule),
        department=department_name(data.get("department")),
        priority=data.get("priority", "—"),
    )
    if matched:
        return sentence + _(": ") + _(", ").join(matched) + _(".")
    return sentence + _(".")


def _status_change(data: dict[str, Any]) -> str:
    return _(
        "Status changed from %(before)s to %(after)s.",
        before=status_label(str(data.get("previous", ""))),
        after=status_label(str(data.get("status", ""))),
    )


def _category_change(data: dict[str, Any]) -> str:
    return _(
        "Category changed from %(before)s to %(after)s.",
        before=category_name(data.get("previous")),
        after=category_name(data.get("category")),
    )


def _priority_change(data: dict[str, Any]) -> str:
    return _(
        "Priority changed from %(before)s to %(after)s.",
        before=data.get("previous") or "—",
        after=data.get("priority") or "—",
    )


def _department_change(data: dict[str, Any]) -> str:
    return _(
        "Moved from %(before)s to %(after)s.",
        before=department_name(data.get("previous")),
        after=department_name(data.get("department")),
    )


def _callback(data: dict[str, Any]) -> str:
    purpose = str(data.get("purpose") or "")
    return _("Callback scheduled: %(purpose)s.", purpose=purpose_label(purpose)) if purpose else ""


def _score(data: dict[str, Any]) -> str:
    return (
        _("The resident gave %(score)s out of 5.", score=data["score"]) if data.get("score") else ""
    )


def _talked(data: dict[str, Any]) -> str:
    seconds = data.get("talk_seconds")
    if seconds is None:
        return ""
    talked = _("Talked %(seconds)s s", seconds=seconds)
    return f"{event_label('call_handled')} · {talked}"


def _transfer(data: dict[str, Any]) -> str:
    """Who handed the call to whom, warm or cold."""
    target = str(data.get("target") or "")
    if data.get("target_name"):
        target = str(data["target_name"])
    elif "@" not in target:
        target = department_name(target) if target != "operators" else _("Another operator")
    who = data.get("from_name") or data.get("from_operator") or ""
    if data.get("mode") == "warm":
        return _("%(who)s → %(target)s (warm transfer)", who=who, target=target)
    return _("%(who)s → %(target)s (cold transfer)", who=who, target=target)


SENTENCES: dict[str, Callable[[dict[str, Any]], str]] = {
    "call_transfer_requested": lambda data: (
        f"{event_label('call_transfer_requested')} · {_transfer(data)}"
    ),
    "call_transferred": lambda data: f"{event_label('call_transferred')} · {_transfer(data)}",
    "call_transfer_failed": lambda data: (
        f"{event_label('call_transfer_failed')} · {_transfer(data)}"
    ),
    "created": _created,
    "routed": _routed,
    "call_handled": _talked,
    "status_changed": _status_change,
    "category_changed": _category_change,
    "priority_changed": _priority_change,
    "department_changed": _department_change,
    "callback_scheduled": _callback,
    "survey_answered": _score,
    "incident_linked": lambda data: f"{event_label('incident_linked')} #{data.get('incident_id')}",
    "incident_unlinked": lambda data: (
        f"{event_label('incident_unlinked')} #{data.get('incident_id')}"
    ),
}


def actor_label(actor: str) -> str:
    """Who did it: a person's address as it is, the machine's own names in words."""
    if actor in ("system", "worker", "resident"):
        return {"system": _("System"), "worker": _("System"), "resident": _("Resident")}[actor]
    if actor.startswith("rule:"):
        return _("System")
    if actor.startswith("resident"):
        return _("Resident")
    if actor.startswith("api:"):
        return _("API client %(name)s", name=actor.removeprefix("api:"))
    return actor


def describe(event: Event) -> tuple[str, str]:
    """(label, text) for the timeline: the text a person wrote, or a sentence built from the data.

    The text is empty when only English words exist; the label alone then says what happened.
    """
    data = event.data or {}
    if event.kind in PERSON_TEXT:
        return event_label(event.kind), event.message
    sentence = SENTENCES.get(event.kind)
    return event_label(event.kind), sentence(data) if sentence else ""


def _ivr_step(step: str) -> str:
    head, _sep, rest = str(step).partition(":")
    if head == "greeted":
        return _("greeting")
    if head == "language":
        return language_name(rest)
    if head == "menu":
        topic = rest.removeprefix("speech:")
        if topic == "operator":
            return _("asked for an operator")
        return category_name(topic)
    if head == "record":
        return _("left a description")
    if head in ("queue", "virtual_hold"):
        return _("waited for an operator")
    if head == "bridged":
        return _("talked to an operator")
    if head == "after_hours":
        return _("after-hours message")
    if head == "progress":
        return _("asked about %(ref)s", ref=rest)
    if head == "outbound":
        return _("call from the centre")
    if head == "fallback":
        return _("technical fallback")
    if head.startswith("on_call"):
        return _("on-call engineer")
    return _("other step")


def ivr_path(steps: list[Any] | tuple[Any, ...] | None) -> str:
    """The caller's way through the phone menu, in words."""
    return " → ".join(_ivr_step(str(s)) for s in steps or ()) or "—"


def call_status_label(code: str | None) -> str:
    return {
        "completed": _("Completed"),
        "in-progress": _("In progress"),
        "ringing": _("Ringing"),
        "queued": _("Waiting"),
        "busy": _("Busy"),
        "no-answer": _("No answer"),
        "failed": _("Failed"),
        "canceled": _("Cancelled"),
    }.get(code or "", _("Unknown"))


def filesize(size: int | None) -> str:
    size = size or 0
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def _any_of(values: Iterable[str], name: Callable[[str], str]) -> str:
    return _(" or ").join(name(str(v)) for v in values)


def rule_when(when: RuleConditions) -> str:
    """A routing rule's conditions as one phrase ("the category is repair and …")."""
    parts = []
    if when.category is not None:
        parts.append(_("the category is %(name)s", name=_any_of(when.category, category_name)))
    if when.priority is not None:
        parts.append(_("the priority is %(p)s", p=_any_of(when.priority, str)))
    if when.channel is not None:
        parts.append(_("it came by %(channel)s", channel=_any_of(when.channel, channel_label)))
    if when.building is not None:
        parts.append(_("the building is %(b)s", b=_any_of(when.building, str)))
    if when.keywords is not None:
        parts.append(_("the text mentions %(words)s", words=_("、").join(when.keywords)))
    if when.hours is not None:
        parts.append(condition("hours", "business" if when.hours == "business" else "after"))
    return _(" and ").join(parts) if parts else _("any ticket")


def rule_then(then: RuleActions) -> str:
    """What a routing rule does, as one phrase."""
    parts = [_("send to %(department)s", department=department_name(then.department))]
    if then.priority:
        parts.append(_("at least priority %(p)s", p=then.priority))
    if then.sla_profile:
        profiles = {
            "urgent": _("Urgent"),
            "high": _("High"),
            "standard": _("Standard"),
            "low": _("Low"),
        }
        profile = profiles.get(then.sla_profile, then.sla_profile)
        parts.append(_("service target “%(profile)s”", profile=profile))
    if then.notify:
        parts.append(_("tell %(who)s", who=_("、").join(department_name(d) for d in then.notify)))
    return _(", ").join(parts)


def decision_sentence(decision: Any) -> str:
    """A routing decision (a dry run's) as the timeline would say it."""
    return _routed(
        {
            "rule": decision.rule,
            "department": decision.department,
            "priority": decision.priority,
            "matched": [list(m) for m in decision.matched],
        }
    )


def weekday_name(index: int) -> str:
    return (
        _("Monday"),
        _("Tuesday"),
        _("Wednesday"),
        _("Thursday"),
        _("Friday"),
        _("Saturday"),
        _("Sunday"),
    )[index]
