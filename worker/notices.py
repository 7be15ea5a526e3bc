"""Incident notices: every household of the affected buildings told once per step and address.

`send_incident_notices(incident_id, step)` writes, in batches, one `IncidentNotice` and one
`OutgoingMessage` per recipient (SMS to a mobile, email to an address, in the resident's language)
and hands each to the existing senders (`send_sms`, `send_email`) through the outbox. The unique
constraint on (incident, step, channel, address) and the message's dedupe key make a retried or
twice-run job add nothing. SMS are spread to `incidents.sms_per_second` (Twilio's rate) and, for
planned works, wait for the end of quiet hours; an incident's own notices go at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from intake.calendar import after_quiet_hours
from intake.config import HotlineConfig
from intake.incidents import incident_context, recipients, stop_notices_token
from intake.models import Incident, IncidentNotice, Outbox, OutgoingMessage, utcnow
from intake.phrases import render
from intake.tickets import job_row
from worker.context import config, sessions, settings

log = logging.getLogger(__name__)

BATCH = 200


def _phrase(step: str) -> str:
    return "incident_notice_" + step.partition(":")[0]


class _Pacing:
    """When each SMS of a step may go: one `incidents.sms_per_second` slot after another from the
    step's first notice (after quiet hours for planned works), and never faster than that from
    this run's start, so a run retried late does not send the rest in a burst."""

    def __init__(
        self, incident: Incident, cfg: HotlineConfig, first: datetime | None, done: int
    ) -> None:
        now = utcnow()
        planned = incident.kind == "planned"
        self.anchor = after_quiet_hours(first or now, cfg) if planned else (first or now)
        self.run_start = after_quiet_hours(now, cfg) if planned else now
        self.per_second = cfg.incidents.sms_per_second
        self.index = done  # SMS slots the step has used
        self.in_run = 0

    def next(self) -> datetime:
        slot = self.anchor + timedelta(seconds=int(self.index // self.per_second))
        floor = self.run_start + timedelta(seconds=int(self.in_run // self.per_second))
        self.index += 1
        self.in_run += 1
        return max(slot, floor)


def send_incident_notices(incident_id: int, step: str) -> str:
    """Write the notices of one step, at most one per address, and queue their sending."""
    cfg = config()
    written = 0
    with sessions()() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return "no such incident"
        everyone = recipients(session, incident, step, cfg)
        done: set[tuple[str, str]] = set()
        first: datetime | None = None
        for channel, to, created in session.execute(
            select(IncidentNotice.channel, IncidentNotice.to, IncidentNotice.created_at).where(
                IncidentNotice.incident_id == incident_id, IncidentNotice.step == step
            )
        ):
            done.add((channel, to))
            first = created if first is None or created < first else first
        pacing = _Pacing(incident, cfg, first, sum(1 for channel, _ in done if channel == "sms"))
        todo = [r for r in everyone if (r.channel, r.to) not in done]
        contexts: dict[str, dict[str, Any]] = {}
        phrase = _phrase(step)
        for start in range(0, len(todo), BATCH):
            now = utcnow()
            rows = []
            for person in todo[start : start + BATCH]:
                language = person.language
                if language not in contexts:
                    contexts[language] = incident_context(session, incident_id, language, cfg)
                context = contexts[language]
                message = OutgoingMessage(
                    ticket_id=None,
                    channel=person.channel,
                    to=person.to,
                    template=f"{phrase}_{person.channel}",
                    dedupe_key=f"notice:{incident_id}:{step}:{person.channel}:{person.to}",
                    headers={"automatic": True, "incident": incident_id, "step": step},
                    status="queued",
                    created_at=now,
                )
                if person.channel == "email":
                    message.subject = render(f"{phrase}_email_subject", language, **context)
                    message.body_text = render(f"{phrase}_email_body", language, **context)
                    if incident.kind == "planned" and person.resident_id is not None:
                        _offer_to_stop(message, person.resident_id, language)
                else:
                    message.body_text = render(f"{phrase}_sms", language, **context)
                rows.append((person, message))
            session.add_all(message for _, message in rows)
            try:
                session.flush()
                for person, message in rows:
                    session.add(
                        IncidentNotice(
                            incident_id=incident_id,
                            step=step,
                            channel=person.channel,
                            to=person.to,
                            resident_id=person.resident_id,
                            language=person.language,
                            outgoing_message_id=message.id,
                            created_at=now,
                        )
                    )
                    session.add(
                        Outbox(
                            **job_row(
                                "send_email" if person.channel == "email" else "send_sms",
                                queue="low",
                                dedupe_key=f"send:{message.id}",
                                available_at=pacing.next() if person.channel == "sms" else now,
                                now=now,
                                outgoing_id=message.id,
                            )
                        )
                    )
                session.commit()
            except IntegrityError:
                # another run of this job wrote some of them first: it sends those
                session.rollback()
                log.info("notices of incident %s %s: written concurrently", incident_id, step)
                return f"{written} notices queued; another run wrote the rest"
            written += len(rows)
    return f"{written} notices queued ({len(everyone)} recipients in all)"


def _offer_to_stop(message: OutgoingMessage, resident_id: int, language: str) -> None:
    """A planned-works notice says how to stop them, in its text and as a one-click
    List-Unsubscribe (RFC 8058), which mail programs show as their own "unsubscribe" button."""
    current = settings()
    token = stop_notices_token(current.secret_key, resident_id)
    url = f"{current.public_base_url.rstrip('/')}/notices/stop/{token}"
    message.body_text = (
        f"{(message.body_text or '').rstrip()}\n\n"
        f"{render('incident_notice_stop_line', language, url=url)}\n"
    )
    message.headers = {
        **(message.headers or {}),
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def alert_incident_suggestions() -> str:
    """Every minute (housekeeping): each new suggestion of detection is emailed once to the
    supervisors and the customer-service centre, with its tickets and the page to declare it."""
    from intake.incidents import suggestions
    from intake.models import Operator
    from intake.tickets import department_by_code, enqueue_after_commit
    from worker.context import settings as app_settings

    cfg, stg = config(), app_settings()
    told = 0
    with sessions()() as session:
        found = suggestions(session, cfg, utcnow())
        if not found:
            return "no suggestions"
        to = list(
            session.scalars(
                select(Operator.email).where(
                    Operator.role == "supervisor", Operator.active.is_(True)
                )
            )
        )
        centre = department_by_code(session, "customer_service", cfg).email
        to = list(dict.fromkeys([*([centre] if centre else []), *to]))
        if not to:
            return "nobody to tell"
        language = cfg.default_language
        for suggestion in found:
            first = suggestion.tickets[0]
            dedupe = f"incident-suggest:{suggestion.building}:{suggestion.category}:{first.id}"
            if session.scalar(
                select(OutgoingMessage.id).where(OutgoingMessage.dedupe_key == dedupe)
            ):
                continue
            category = cfg.category(suggestion.category)
            context = {
                "company": cfg.company(language),
                "building": suggestion.building,
                "category": category.names.get(language, suggestion.category)
                if category
                else suggestion.category,
                "count": len(suggestion.tickets),
                "tickets": [(t.ref, t.subject) for t in suggestion.tickets],
                "link": f"{stg.public_base_url.rstrip('/')}/incidents",
            }
            message = OutgoingMessage(
                channel="email",
                to=", ".join(to),
                subject=render("incident_suggestion_email_subject", language, **context),
                body_text=render("incident_suggestion_email_body", language, **context),
                template="incident_suggestion_email",
                dedupe_key=dedupe,
                headers={"automatic": False},
                status="queued",
                created_at=utcnow(),
            )
            session.add(message)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                continue
            enqueue_after_commit(
                session, "send_email", dedupe_key=f"send:{message.id}", outgoing_id=message.id
            )
            session.commit()
            told += 1
    return f"{told} suggestions told"
