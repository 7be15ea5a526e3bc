"""Shared set-up for the API and Open311 tests: an app, API clients and a few tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from intake.models import Department, Ticket, utcnow
from intake.service import receive
from tests.factories import call_contact, email_contact
from web.api.auth import create_client


def make_client(
    sessions: Any, name: str, role: str = "operator", department: str | None = None
) -> str:
    with sessions() as session:
        token = create_client(session, name, role, department).token
        session.commit()
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def file_tickets(sessions: Any, config: Any) -> dict[str, str]:
    """Five tickets with known priority, department and due times: name -> ref."""
    now = utcnow()
    specs = {
        "leak": (email_contact(subject="廚房漏水"), "P3", "engineering", now + timedelta(hours=1)),
        "lift": (call_contact(text="電梯壞了"), "P2", "engineering", now + timedelta(hours=30)),
        "noise": (
            email_contact(sender_email="lee.siumui@example.com", subject="樓上噪音"),
            "P3",
            "customer_service",
            now - timedelta(hours=1),
        ),
        "fee": (
            email_contact(sender_email="emily.carter@example.com", subject="Management fee"),
            "P4",
            None,
            None,
        ),
        "fire": (
            call_contact(sender_phone="+886987000999", text="火警"),
            "P1",
            "security",
            now + timedelta(hours=3),
        ),
    }
    refs: dict[str, str] = {}
    for name, (contact, priority, dept_code, due) in specs.items():
        receipt = receive(sessions, contact, config)
        with sessions() as session:
            ticket = session.get(Ticket, receipt.ticket_id)
            assert ticket is not None
            ticket.priority = priority
            ticket.resolution_due_at = due
            if dept_code:
                ticket.department_id = session.scalar(
                    select(Department.id).where(Department.code == dept_code)
                )
                ticket.status = "routed"
            session.commit()
        refs[name] = receipt.ticket_ref
    return refs
