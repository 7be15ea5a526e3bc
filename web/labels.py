"""Translated names for the codes stored in the database (statuses, channels, roles …)."""

from __future__ import annotations

from flask_babel import gettext as _


def status_label(code: str) -> str:
    return {
        "new": _("New"),
        "routed": _("Routed"),
        "in_progress": _("In progress"),
        "waiting_resident": _("Waiting for resident"),
        "resolved": _("Resolved"),
        "closed": _("Closed"),
    }.get(code, code)


def channel_label(code: str) -> str:
    return {
        "voice": _("Phone"),
        "email": _("Email"),
        "sms": _("SMS"),
        "web": _("Console"),
        "api": _("API"),
        "open311": _("Open311"),
    }.get(code, code)


def role_label(code: str) -> str:
    return {
        "operator": _("Operator"),
        "supervisor": _("Supervisor"),
        "admin": _("Administrator"),
        "department": _("Department staff"),
    }.get(code, code)


def kind_label(code: str) -> str:
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
    }.get(code, code)


def callback_status_label(code: str) -> str:
    return {
        "scheduled": _("Scheduled"),
        "in_progress": _("In progress"),
        "done": _("Done"),
        "completed": _("Done"),
        "failed": _("Failed"),
        "cancelled": _("Cancelled"),
    }.get(code, code)


def purpose_label(code: str) -> str:
    return {
        "missed_call": _("Missed call"),
        "virtual_hold": _("Virtual hold"),
        "voicemail": _("Voicemail"),
        "after_hours": _("After hours"),
        "follow_up": _("Follow-up"),
        "survey": _("Satisfaction survey"),
        "operator_request": _("Operator request"),
    }.get(code, code)


def sla_label(code: str) -> str:
    return {"breached": _("SLA breached"), "at_risk": _("SLA at risk"), "ok": _("On time")}.get(
        code, code
    )


LABELS = {
    "status_label": status_label,
    "channel_label": channel_label,
    "role_label": role_label,
    "kind_label": kind_label,
    "callback_status_label": callback_status_label,
    "purpose_label": purpose_label,
    "sla_label": sla_label,
}
