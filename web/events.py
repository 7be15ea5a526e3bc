"""A timeline event in the operator's language.

Events are stored with a machine `kind`, structured `data` and an English `message` for logs and
the API. The console shows the kind's name and, where the data allows, a sentence built from it
in the operator's language; free text a person wrote (a note, a resolution) is shown as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _

from intake.models import Event
from web.labels import _table, purpose_label, status_label

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
        "email_failed": _("Email could not be delivered"),
        "email_bounced": _("Email bounced"),
        "sms_failed": _("SMS could not be delivered"),
        "ack_suppressed": _("Acknowledgement not sent"),
        "reply_suppressed": _("Automatic message not sent"),
    }


def event_label(kind: str) -> str:
    return _table(_event_labels).get(kind, _("Event"))


def _status_change(data: dict[str, Any]) -> str:
    return f"{status_label(data.get('previous', ''))} → {status_label(data.get('status', ''))}"


def _purpose(data: dict[str, Any]) -> str:
    return purpose_label(str(data.get("purpose", ""))) if data.get("purpose") else ""


def _score(data: dict[str, Any]) -> str:
    return f"{data.get('score')}/5" if data.get("score") else ""


DETAILS: dict[str, Callable[[dict[str, Any]], str]] = {
    "status_changed": _status_change,
    "callback_scheduled": _purpose,
    "survey_answered": _score,
}


def actor_label(actor: str) -> str:
    """Who did it: a person's address as it is, the machine's own names in words."""
    if actor in ("system", "worker", "resident"):
        return {"system": _("System"), "worker": _("System"), "resident": _("Resident")}[actor]
    if actor.startswith("rule:"):
        return _("Routing rule %(name)s", name=actor.removeprefix("rule:"))
    if actor.startswith("resident"):
        return _("Resident")
    if actor.startswith("api:"):
        return _("API client %(name)s", name=actor.removeprefix("api:"))
    return actor


def describe(event: Event) -> tuple[str, str]:
    """(label, detail) for the timeline; the detail is empty when only English words exist."""
    data = event.data or {}
    if event.kind in PERSON_TEXT:
        return event_label(event.kind), event.message
    detail = DETAILS.get(event.kind)
    return event_label(event.kind), detail(data) if detail else ""
