"""Translated names for the codes stored in the database (statuses, channels, roles …).

Each table is translated once per locale and process: flask-babel loads one catalog per locale for
the life of the process, so the labels cannot change, and a page of 50 rows would otherwise look up
every label of every table for every cell.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import get_locale
from flask_babel import gettext as _

_TABLES: dict[tuple[str, str], dict[str, str]] = {}


def _table(build: Callable[[], dict[str, str]]) -> dict[str, str]:
    key = (build.__name__, str(get_locale()))
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = build()
    return table


def status_labels() -> dict[str, str]:
    return _table(_status_labels)


def status_label(code: str) -> str:
    return status_labels().get(code, code)


def channel_labels() -> dict[str, str]:
    return _table(_channel_labels)


def channel_label(code: str) -> str:
    return channel_labels().get(code, code)


def role_label(code: str) -> str:
    return _table(_role_labels).get(code, code)


def kind_label(code: str) -> str:
    return _table(_kind_labels).get(code, code)


def callback_status_label(code: str) -> str:
    return _table(_callback_status_labels).get(code, code)


def purpose_label(code: str) -> str:
    return _table(_purpose_labels).get(code, code)


def sla_labels() -> dict[str, str]:
    return _table(_sla_labels)


def sla_label(code: str) -> str:
    return sla_labels().get(code, code)


def _status_labels() -> dict[str, str]:
    return {
        "new": _("New"),
        "routed": _("Routed"),
        "in_progress": _("In progress"),
        "waiting_resident": _("Waiting for resident"),
        "resolved": _("Resolved"),
        "closed": _("Closed"),
    }


def _channel_labels() -> dict[str, str]:
    return {
        "voice": _("Phone"),
        "email": _("Email"),
        "sms": _("SMS"),
        "phone": _("Phone"),
        "web": _("Console"),
        "api": _("API"),
        "open311": _("Open311"),
    }


def _role_labels() -> dict[str, str]:
    return {
        "operator": _("Operator"),
        "supervisor": _("Supervisor"),
        "admin": _("Administrator"),
        "department": _("Department staff"),
    }


def _kind_labels() -> dict[str, str]:
    return {
        "email": _("Email"),
        "call": _("Call"),
        "voicemail": _("Voicemail"),
        "transcript": _("Transcript"),
        "note": _("Internal note"),
        "sms": _("SMS"),
        "callback": _("Callback"),
        "callback_attempt": _("Callback attempt"),
        "reply": _("Reply"),
    }


def _callback_status_labels() -> dict[str, str]:
    return {
        "scheduled": _("Scheduled"),
        "in_progress": _("In progress"),
        "done": _("Done"),
        "completed": _("Done"),
        "failed": _("Failed"),
        "cancelled": _("Cancelled"),
        "needs_operator": _("Needs an operator"),
    }


def _purpose_labels() -> dict[str, str]:
    return {
        "missed_call": _("Missed call"),
        "virtual_hold": _("Virtual hold"),
        "voicemail": _("Voicemail"),
        "after_hours": _("After hours"),
        "follow_up": _("Follow-up"),
        "survey": _("Satisfaction survey"),
        "operator_request": _("Operator request"),
    }


def _sla_labels() -> dict[str, str]:
    return {"breached": _("SLA breached"), "at_risk": _("SLA at risk"), "ok": _("On time")}


LABELS = {
    "status_label": status_label,
    "channel_label": channel_label,
    "role_label": role_label,
    "kind_label": kind_label,
    "callback_status_label": callback_status_label,
    "purpose_label": purpose_label,
    "sla_label": sla_label,
}
