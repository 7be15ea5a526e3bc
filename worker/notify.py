"""Telling departments: an email per case (a digest for low priority), and for emergencies a page
that calls the on-call chain one person at a time until someone presses 1.

Settings (all optional) under `notifications:` in the configuration: `digest_priorities` (default
[P4]), `page_ack_timeout_seconds` (default 120), `page_priorities` (default [P1]),
`page_manager_after_minutes` (default `sla.manager_after_minutes`).

An emergency page stops when someone on call answers: the caller's live <Dial> or 1 pressed on a
page call (`intake.paging.on_call_answered`, which also makes them the assignee). A page nobody
answers climbs the ladder: the supervisor when the chain is exhausted, then the project manager.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import clock
from intake.config import HotlineConfig, Settings
from intake.constants import OPEN_STATUSES
from intake.db import rowcount
from intake.models import (
    DepartmentNotification,
    Operator,
    OutgoingMessage,
    Page,
    Ticket,
    utcnow,
)
from intake.phrases import render, spoken_ref
from intake.sla import LEVEL_NAMES
from intake.tickets import department_by_code, enqueue_after_commit, record_event
from worker.context import config, sessions, settings

log = logging.getLogger(__name__)

REASONS = (
    "routed",
    "not_fixed",
    "escalated",
    "sla_warning",
    "emergency",
    "page_unacknowledged",
    "reopened",
)


def _fmt(moment: Any, cfg: HotlineConfig) -> str:
    return moment.astimezone(cfg.timezone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _location(ticket: Ticket) -> str:
    if ticket.unit is None:
        return ""
    return f"{ticket.unit.building.name} {ticket.unit.label}"


def routing_explanation(data: dict[str, Any], cfg: HotlineConfig, language: str) -> str:
    """Why the ticket went where it went, in `language`: the rule's name and what matched."""
    rule = cfg.rule(str(data.get("rule") or ""))
    department = cfg.department(str(data.get("department") or ""))
    if rule is None or department is None:
        return ""
    conditions = []
    for kind, value in data.get("matched") or []:
        if kind == "category":
            category = cfg.category(value)
            value = category.names.get(language, value) if category else value
        conditions.append((kind, value))
    return render(
        "notify_routing_explanation",
        language,
        rule=rule.title(language),
        department=department.names.get(language, department.code),
        priority=data.get("priority", ""),
        conditions=conditions,
    )


def ticket_context(
    ticket: Ticket, cfg: HotlineConfig, stg: Settings, language: str, reason: str
) -> dict[str, Any]:
    category = cfg.category(ticket.category)
    routed = next((e for e in reversed(ticket.events) if e.kind == "routed"), None)
    return {
        "ref": ticket.ref,
        "ref_spoken": spoken_ref(ticket.ref or "", language),
        "reason_label": render(f"notify_reason_{reason}", language),
        "priority": ticket.priority,
        "category": category.names.get(language, ticket.category) if category else ticket.category,
        "subject": ticket.subject,
        "description": ticket.description,
        "location": _location(ticket),
        "contact": ticket.contact_phone or ticket.contact_email or "",
        "first_response_due": _fmt(ticket.first_response_due_at, cfg),
        "resolution_due": _fmt(ticket.resolution_due_at, cfg),
        "explanation": routing_explanation(routed.data or {}, cfg, language) if routed else "",
        "link": f"{stg.public_base_url.rstrip('/')}/tickets/{ticket.ref}",
    }


def _recipients(session: Session, code: str, cfg: HotlineConfig, reason: str) -> list[str]:
    dept = department_by_code(session, code, cfg)
    found = [dept.email] if dept.email else []
    if reason in ("escalated", "page_unacknowledged") and code == "customer_service":
        found += list(
            session.scalars(
                select(Operator.email).where(
                    Operator.role == "supervisor", Operator.active.is_(True)
                )
            )
        )
    return list(dict.fromkeys(found))


def _routed_notify_list(ticket: Ticket) -> list[str]:
    routed = next((e for e in reversed(ticket.events) if e.kind == "routed"), None)
    return list((routed.data or {}).get("notify") or []) if routed else []


def notify_department(
    ticket_id: int, reason: str = "routed", department: str | None = None, key: str = ""
) -> str:
    """Tell the department (and, on routing, everyone the matched rule names) about a ticket."""
    if reason not in REASONS:
        raise ValueError(f"unknown notification reason {reason!r}")
    cfg, stg = config(), settings()
    opts = cfg.notifications
    done: list[str] = []
    with sessions()() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return "no such ticket"
        codes = [department] if department else []
        if not codes and ticket.department is not None:
            codes.append(ticket.department.code)
        if reason in ("routed", "emergency"):
            codes += _routed_notify_list(ticket)
        codes = list(dict.fromkeys(codes or ["customer_service"]))
        digest = reason == "routed" and ticket.priority in opts.digest_priorities
        language = cfg.default_language
        for code in codes:
            dedupe = f"notify:{reason}:{ticket.id}:{code}:{key}"
            if session.scalar(
                select(DepartmentNotification.id).where(DepartmentNotification.dedupe_key == dedupe)
            ):
                continue
            row = DepartmentNotification(
                department_code=code,
                ticket_id=ticket.id,
                reason=reason,
                mode="digest" if digest else "immediate",
                dedupe_key=dedupe,
                created_at=utcnow(),
            )
            session.add(row)
            if not digest:
                recipients = _recipients(session, code, cfg, reason)
                if recipients:
                    context = ticket_context(ticket, cfg, stg, language, reason)
                    context["department"] = department_by_code(session, code, cfg).name(language)
                    message = OutgoingMessage(
                        ticket_id=ticket.id,
                        channel="email",
                        to=", ".join(recipients),
                        subject=render("notify_department_email_subject", language, **context),
                        body_text=render("notify_department_email_body", language, **context),
                        template="notify_department_email",
                        dedupe_key=dedupe,
                        status="queued",
                        created_at=utcnow(),
                    )
                    session.add(message)
                    session.flush()
                    row.outgoing_message_id = message.id
                    enqueue_after_commit(
                        session,
                        "send_email",
                        dedupe_key=f"send:{message.id}",
                        outgoing_id=message.id,
                    )
            if reason != "routed":  # routine routing mail is in department_notification only
                record_event(
                    session,
                    ticket,
                    "department_notified",
                    f"{code} told ({reason}, {'digest' if digest else 'email'})",
                    actor="worker",
                    department=code,
                    reason=reason,
                    mode=row.mode,
                )
            done.append(code)
        if reason in ("routed", "emergency") and ticket.priority in opts.page_priorities:
            start_page(session, ticket, cfg, reason="emergency")
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "already notified"
    return f"notified {', '.join(done) or 'nobody new'}"


def send_department_digests(key: str = "") -> str:
    """One email per department listing the low-priority cases not yet sent to it."""
    cfg, stg = config(), settings()
    language = cfg.default_language
    sent = 0
    with sessions()() as session:
        pending = list(
            session.scalars(
                select(DepartmentNotification)
                .where(
                    DepartmentNotification.mode == "digest",
                    DepartmentNotification.outgoing_message_id.is_(None),
                )
                .order_by(DepartmentNotification.id)
            )
        )
        by_dept: dict[str, list[DepartmentNotification]] = {}
        for row in pending:
            by_dept.setdefault(row.department_code, []).append(row)
        for code, rows in by_dept.items():
            recipients = _recipients(session, code, cfg, "routed")
            if not recipients:
                continue
            items = []
            for row in rows:
                ticket = session.get(Ticket, row.ticket_id) if row.ticket_id else None
                if ticket is None:
                    continue
                category = cfg.category(ticket.category)
                items.append(
                    {
                        "ref": ticket.ref,
                        "priority": ticket.priority,
                        "category": category.names.get(language) if category else ticket.category,
                        "subject": ticket.subject,
                        "reason_label": render(f"notify_reason_{row.reason}", language),
                    }
                )
            context = {
                "department": department_by_code(session, code, cfg).name(language),
                "count": len(items),
                "items": items,
                "link": f"{stg.public_base_url.rstrip('/')}/",
            }
            message = OutgoingMessage(
                channel="email",
                to=", ".join(recipients),
                subject=render("notify_digest_email_subject", language, **context),
                body_text=render("notify_digest_email_body", language, **context),
                template="notify_digest_email",
                dedupe_key=f"digest:{code}:{rows[0].id}-{rows[-1].id}",
                status="queued",
                created_at=utcnow(),
            )
            session.add(message)
            session.flush()
            claimed = rowcount(
                session.execute(
                    update(DepartmentNotification)
                    .where(
                        DepartmentNotification.id.in_([r.id for r in rows]),
                        DepartmentNotification.outgoing_message_id.is_(None),
                    )
                    .values(outgoing_message_id=message.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if claimed != len(rows):
                session.rollback()
                return "another worker is sending the digest"
            enqueue_after_commit(
                session, "send_email", dedupe_key=f"send:{message.id}", outgoing_id=message.id
            )
            sent += 1
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "digest already sent"
    return f"{sent} digest(s) queued"


def on_call_chain(session: Session, ticket: Ticket, cfg: HotlineConfig) -> list[str]:
    """The routed department's on-call numbers, then those of every department the rule names."""
    codes = [ticket.department.code] if ticket.department else []
    codes += _routed_notify_list(ticket)
    chain: list[str] = []
    for code in dict.fromkeys(codes):
        conf = cfg.department(code)
        if conf is not None:
            chain += [n for n in conf.on_call if n not in chain]
    return chain


def start_page(session: Session, ticket: Ticket, cfg: HotlineConfig, *, reason: str) -> Page | None:
    """Open a page for the ticket once; the first call goes out after this transaction commits."""
    existing = session.scalar(
        select(Page).where(Page.ticket_id == ticket.id, Page.reason == reason).limit(1)
    )
    if existing is not None:
        return existing
    chain = on_call_chain(session, ticket, cfg)
    if not chain:
        record_event(
            session, ticket, "page_skipped", "no on-call numbers configured", actor="worker"
        )
        return None
    page = Page(ticket_id=ticket.id, reason=reason, chain=chain, step=0, status="paging")
    session.add(page)
    session.flush()
    record_event(
        session,
        ticket,
        "page_started",
        f"paging the on-call chain ({len(chain)} people)",
        actor="worker",
        page_id=page.id,
        chain=chain,
    )
    enqueue_after_commit(
        session,
        "page_step",
        queue="urgent",
        dedupe_key=f"page:{page.id}:0",
        page_id=page.id,
        step=0,
    )
    return page


def page_step(page_id: int, step: int) -> str:
    """Call (then text) person `step` of the chain and start their acknowledgement timer."""
    from voice.dialer import DialError, dial, status_callback_url

    cfg, stg = config(), settings()
    opts = cfg.notifications
    with sessions()() as session:
        page = session.get(Page, page_id)
        if page is None or page.status != "paging" or page.step != step:
            return "page moved on"
        ticket = session.get(Ticket, page.ticket_id)
        assert ticket is not None
        if _answered_elsewhere(session, page):
            session.commit()
            return "someone on call already answered"
        number = page.chain[step]
        language = cfg.default_language
        context = ticket_context(ticket, cfg, stg, language, "emergency")
        url = f"{stg.public_base_url.rstrip('/')}/voice/page?page={page.id}"
        note = ""
        try:
            sid = dial(
                session,
                stg,
                key=f"page-{page.id}-{step}",
                to=number,
                url=url,
                status_callback=status_callback_url(stg),
                purpose="page",
            )
            note = f"called {number} ({sid})"
        except DialError as exc:
            session.rollback()
            ticket = session.get(Ticket, page.ticket_id)
            assert ticket is not None
            note = f"could not call {number}: {exc}"
        sms_key = f"page:{page.id}:{step}:sms"
        if not session.scalar(
            select(OutgoingMessage.id).where(OutgoingMessage.dedupe_key == sms_key)
        ):
            sms = OutgoingMessage(
                ticket_id=ticket.id,
                channel="sms",
                to=number,
                body_text=render("notify_page_sms", language, **context),
                template="notify_page_sms",
                dedupe_key=sms_key,
                status="queued",
                created_at=utcnow(),
            )
            session.add(sms)
            session.flush()
            enqueue_after_commit(
                session, "send_sms", queue="urgent", dedupe_key=f"send:{sms.id}", outgoing_id=sms.id
            )
        record_event(
            session,
            ticket,
            "page_called",
            f"on-call {step + 1}/{len(page.chain)}: {note}",
            actor="worker",
            page_id=page.id,
            step=step,
            number=number,
        )
        enqueue_after_commit(
            session,
            "page_escalate",
            queue="urgent",
            dedupe_key=f"page-timeout:{page.id}:{step}",
            available_at=clock.now() + timedelta(seconds=opts.page_ack_timeout_seconds),
            page_id=page.id,
            step=step,
        )
        session.commit()
        return note


def _answered_elsewhere(session: Session, page: Page) -> bool:
    """Another page row of the ticket was answered (the caller's live <Dial> reached someone
    while this page was being opened): this one stops too."""
    answered = session.scalar(
        select(Page)
        .where(Page.ticket_id == page.ticket_id, Page.id != page.id, Page.status == "acknowledged")
        .order_by(Page.id)
        .limit(1)
    )
    if answered is None:
        return False
    session.execute(
        update(Page)
        .where(Page.id == page.id, Page.status == "paging")
        .values(
            status="acknowledged",
            acknowledged_by=answered.acknowledged_by,
            acknowledged_at=answered.acknowledged_at,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return True


def _escalate(session: Session, ticket: Ticket, level: int, message: str, **data: Any) -> bool:
    """Raise the ticket to `level` once (1 supervisor, 2 project manager), as the SLA sweep does:
    the same conditional UPDATE and the same `escalated` event, so neither repeats the other."""
    moved = rowcount(
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.escalation_level < level)
            .values(escalated=True, escalation_level=level, updated_at=utcnow(), sla_next_at=None)
            .execution_options(synchronize_session=False)
        )
    )
    if moved:
        record_event(
            session,
            ticket,
            "escalated",
            f"{message}: escalated to the {LEVEL_NAMES[level]}",
            actor="worker",
            level=level,
            target="page",
            **data,
        )
    return bool(moved)


def _tell(session: Session, ticket: Ticket, page: Page, code: str) -> None:
    enqueue_after_commit(
        session,
        "notify_department",
        queue="urgent",
        dedupe_key=f"notify:page_unacknowledged:{page.id}:{code}",
        ticket_id=ticket.id,
        reason="page_unacknowledged",
        department=code,
        key=f"page{page.id}",
    )


def page_escalate(page_id: int, step: int) -> str:
    """Nobody pressed 1 in time: page the next person; after the last one, the ladder: the
    supervisor at once, the project manager `page_manager_after_minutes` later (default
    `sla.manager_after_minutes`) if nobody on call has answered by then.

    The project manager's timer is this job again with `step` equal to the chain's length.
    """
    cfg = config()
    with sessions()() as session:
        page = session.get(Page, page_id)
        if page is not None and page.status == "exhausted" and step == len(page.chain):
            return _escalate_to_manager(session, page)
        moved = rowcount(
            session.execute(
                update(Page)
                .where(Page.id == page_id, Page.status == "paging", Page.step == step)
                .values(step=step + 1, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        )
        if not moved:
            session.rollback()
            return "acknowledged or already moved on"
        page = session.get(Page, page_id)
        assert page is not None
        session.refresh(page)
        ticket = session.get(Ticket, page.ticket_id)
        assert ticket is not None
        if _answered_elsewhere(session, page):
            session.commit()
            return "someone on call already answered"
        if page.step < len(page.chain):
            record_event(
                session,
                ticket,
                "page_escalated",
                f"no acknowledgement from {page.chain[step]}; paging {page.chain[page.step]}",
                actor="worker",
                page_id=page.id,
                step=page.step,
            )
            enqueue_after_commit(
                session,
                "page_step",
                queue="urgent",
                dedupe_key=f"page:{page.id}:{page.step}",
                page_id=page.id,
                step=page.step,
            )
            session.commit()
            return f"paging {page.chain[page.step]}"
        page.status = "exhausted"
        record_event(
            session,
            ticket,
            "page_unacknowledged",
            f"nobody of {len(page.chain)} on call acknowledged the emergency",
            actor="worker",
            page_id=page.id,
        )
        _escalate(session, ticket, 1, "nobody on call answered the emergency", page_id=page.id)
        _tell(session, ticket, page, "customer_service")
        after = timedelta(minutes=cfg.page_manager_after_minutes)
        enqueue_after_commit(
            session,
            "page_escalate",
            queue="urgent",
            dedupe_key=f"page-manager:{page.id}",
            available_at=clock.now() + after,
            page_id=page.id,
            step=len(page.chain),
        )
        session.commit()
        return "chain exhausted: the supervisor is told"


def _escalate_to_manager(session: Session, page: Page) -> str:
    """The ladder's second rung: still nobody on call has answered (the page is still exhausted)."""
    ticket = session.get(Ticket, page.ticket_id)
    assert ticket is not None
    if ticket.status not in OPEN_STATUSES or ticket.assignee_id is not None:
        return "the emergency is handled"
    if not _escalate(
        session, ticket, 2, "still nobody on call answered the emergency", page_id=page.id
    ):
        session.rollback()
        return "already with the project manager"
    _tell(session, ticket, page, "management")
    session.commit()
    return "the project manager is told"
