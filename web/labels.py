"""Translated names for the codes stored in the database (statuses, channels, roles …).

Each table is translated once per locale and process: flask-babel loads one catalog per locale for
the life of the process, so the labels cannot change, and a page of 50 rows would otherwise look up
every label of every table for every cell.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask_babel import get_locale
from flask_babel import gettext as _

_TABLES: dict[tuple[str, str], dict[str, str]] = {}


def cached_labels(build: Callable[[], dict[str, str]]) -> dict[str, str]:
    """The labels `build` makes, built once per locale."""
    key = (build.__name__, str(get_locale()))
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = build()
    return table


def status_labels() -> dict[str, str]:
    return cached_labels(_status_labels)


def status_label(code: str) -> str:
    return status_labels().get(code, code)


def channel_labels() -> dict[str, str]:
    return cached_labels(_channel_labels)


def channel_label(code: str) -> str:
    return channel_labels().get(code, code)


def role_label(code: str) -> str:
    return cached_labels(_role_labels).get(code, code)


def kind_label(code: str) -> str:
    return cached_labels(_kind_labels).get(code, code)


def callback_status_label(code: str) -> str:
    return cached_labels(_callback_status_labels).get(code, code)


def purpose_label(code: str) -> str:
    return cached_labels(_purpose_labels).get(code, code)


def spoken_label(code: str) -> str:
    """A spoken variety (the phone's language keys), as the reader would name it."""
    return cached_labels(_spoken_labels).get(code, code)


def sla_labels() -> dict[str, str]:
    return cached_labels(_sla_labels)


def job_label(name: str) -> str:
    """A background job's name in words (the health page's failed jobs)."""
    return cached_labels(_job_labels).get(name, name)


def sla_label(code: str) -> str:
    return sla_labels().get(code, code)


def span(seconds: float) -> str:
    """A length of time as a person says it: "2 days 4 hours", "3 hours 5 minutes", "12 minutes"."""
    minutes = int(abs(seconds) // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return _("%(d)s d %(h)s h", d=days, h=hours) if hours else _("%(d)s d", d=days)
    if hours:
        return _("%(h)s h %(m)s min", h=hours, m=mins) if mins else _("%(h)s h", h=hours)
    return _("%(m)s min", m=mins)


def time_left(due: datetime | None, now: datetime) -> str:
    """ "2 d 4 h left" before the due time, "3 h late" after it; empty without one."""
    if due is None:
        return ""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        return _("%(span)s left", span=span(seconds))
    return _("%(span)s late", span=span(seconds))


def message_label(template: str | None, direction: str = "out") -> str:
    """What an outgoing message is, from the template it was written with (never the name)."""
    name = template or ""
    if name.startswith("ack_"):
        return _("Acknowledgement")
    if name.startswith("notify_"):
        return _("Department notification")
    if name.startswith("reply_resolved"):
        return _("Resolved message")
    if name.startswith("survey") or name.startswith("follow_up"):
        return _("Follow-up questions")
    if name.startswith("reply_"):
        return _("Automatic message")
    return _("Reply")


def delivery_label(code: str | None) -> str:
    return cached_labels(_delivery_labels).get(code or "", _("Unknown")) if code else ""


def _delivery_labels() -> dict[str, str]:
    return {
        "queued": _("Waiting to be sent"),
        "sending": _("Being sent"),
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "kept": _("Kept in the local outbox"),
        "failed": _("Not delivered"),
        "undeliverable": _("Undeliverable"),
        "bounced": _("Bounced"),
        "suppressed": _("Not sent"),
        "cancelled": _("Cancelled"),
    }


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
        "walk_in": _("Walk-in"),
        "desk_phone": _("Desk phone"),
        "letter": _("Letter"),
        "other": _("Other"),
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
        "call_recording": _("Call recording"),
        "transcript": _("Transcript"),
        "note": _("Internal note"),
        "sms": _("SMS"),
        "callback": _("Callback"),
        "callback_attempt": _("Callback attempt"),
        "reply": _("Reply"),
        "missed_call": _("Missed call"),
        "phone": _("Phone"),
        "message": _("Message from the web"),
        "staff_entry": _("Taken down by staff"),
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


def _spoken_labels() -> dict[str, str]:
    return {
        "zh-Hant": _("Mandarin"),
        "zh-Hans": _("Mandarin (mainland)"),
        "yue": _("Cantonese"),
        "en": _("English"),
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
    "spoken_label": spoken_label,
    "message_label": message_label,
    "delivery_label": delivery_label,
}


def _job_labels() -> dict[str, str]:
    return {
        "route_ticket": _("Route a new ticket"),
        "acknowledge": _("Acknowledge a resident's message"),
        "notify_department": _("Notify the department"),
        "send_department_digests": _("Send department digests"),
        "page_step": _("Page the on-call person"),
        "page_escalate": _("Escalate a page"),
        "send_scripted_reply": _("Send a standard reply"),
        "place_callback": _("Place a callback"),
        "place_callbacks": _("Place callbacks"),
        "callback_call_ended": _("Record a callback's outcome"),
        "chase_silent_calls": _("Chase calls that went silent"),
        "sla_sweep": _("Check SLA deadlines"),
        "send_sms": _("Send an SMS"),
        "close_if_quiet": _("Close a quiet ticket"),
        "fetch_recording": _("Fetch a call recording"),
        "send_email": _("Send an email"),
        "process_raw_message": _("Read an incoming email"),
        "send_incident_notices": _("Send incident notices"),
        "alert_incident_suggestions": _("Suggest incidents to supervisors"),
        "desk_ring_operator": _("Ring an operator"),
        "desk_bridge_caller": _("Connect a caller to an operator"),
        "desk_cancel_offer": _("Stop ringing an operator"),
        "desk_transfer_caller": _("Transfer a caller"),
        "desk_dial_transfer": _("Ring a transfer's target"),
        "desk_transfer_timeout": _("Give up on an unanswered transfer"),
        "desk_hold_caller": _("Put a caller on hold or back"),
        "desk_hangup_caller": _("End a caller's call"),
        "desk_stop_transfer": _("Stop a transfer"),
        "desk_leave_call": _("Take an operator off a call"),
        "desk_attach_recordings": _("Attach call recordings to the ticket"),
        "retention_sweep": _("Remove data past its retention"),
        "check_alerts": _("Check alert conditions"),
        "refresh_report_days": _("Update the dashboard's daily figures"),
    }
