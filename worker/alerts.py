"""Alerts pushed to people: when a channel's health turns bad, admins get an email and an SMS, once per
incident, and once more when it recovers. Never a storm.

`check_alerts` runs every minute (a periodic job). What counts as bad:
- an intake channel (an IMAP mailbox, the SMTP listener) whose last status is not ok: login failing,
  unreachable, refusing, silent for longer than usual;
- jobs that failed for good (they wait for a person: `hotline jobs failed`);
- the outbox backlog: work due more than `BACKLOG_MINUTES` ago and not yet done;
- callbacks more than `LATE_MINUTES` late;
- Twilio webhooks refused for a wrong signature faster than `alerts.rejected_webhooks_per_minute`
  (default 10) over the last `alerts.rejected_webhooks_minutes` (default 5): someone forging
  requests, or a changed auth token or public address (every web process counts them in Redis).

An incident is one row in `alert_incident` (one open row per key, by a partial unique index, so two
workers cannot both open it). It closes only after its condition has been gone for `RECOVER_AFTER`,
so a flapping channel does not send a message every minute. Recipients: active administrators (their
email and phone, in their language) and the `alerts: {emails: [...], phones: [...]}` of the
configuration.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import rejections
from intake.clock import utcnow
from intake.config import get_settings
from intake.db import rowcount, session_factory
from intake.models import (
    AlertIncident,
    Callback,
    ChannelHealth,
    Operator,
    Outbox,
    OutgoingMessage,
)
from intake.phrases import render
from intake.tickets import enqueue_after_commit
from worker.queues import redis_connection

log = logging.getLogger(__name__)

GOOD_CHANNEL_STATUSES = ("ok", "standby", "unknown")
BACKLOG_MINUTES = 10
LATE_MINUTES = 15
RECOVER_AFTER = timedelta(minutes=5)
REJECTED_PER_MINUTE = 10
REJECTED_MINUTES = 5


def findings(
    session: Session, now: datetime, *, redis: Any = None, config: Any = None
) -> dict[str, dict[str, Any]]:
    """What is wrong now, by incident key (webhook signatures only when given Redis)."""
    found: dict[str, dict[str, Any]] = {}
    for row in session.scalars(
        select(ChannelHealth).where(ChannelHealth.status.not_in(GOOD_CHANNEL_STATUSES))
    ):
        found[f"channel:{row.name}"] = {
            "kind": "channel",
            "name": row.name,
            "status": row.status,
            "error": (row.last_error or "")[:200],
        }
    failed = session.scalar(select(func.count()).where(Outbox.status == "failed")) or 0
    if failed:
        found["jobs_failed"] = {"kind": "jobs_failed", "count": failed}
    oldest = session.scalar(
        select(func.min(Outbox.available_at)).where(
            Outbox.status.in_(("pending", "enqueued")), Outbox.available_at <= now
        )
    )
    if oldest is not None and now - oldest > timedelta(minutes=BACKLOG_MINUTES):
        found["outbox_backlog"] = {
            "kind": "outbox_backlog",
            "minutes": int((now - oldest).total_seconds() // 60),
        }
    late = (
        session.scalar(
            select(func.count()).where(
                Callback.status == "scheduled",
                Callback.due_at < now - timedelta(minutes=LATE_MINUTES),
            )
        )
        or 0
    )
    if late:
        found["callbacks_late"] = {"kind": "callbacks_late", "count": late, "minutes": LATE_MINUTES}
    if redis is not None:
        found.update(_rejected_webhooks(redis, now, config))
    return found


def _rejected_webhooks(redis: Any, now: datetime, config: Any) -> dict[str, dict[str, Any]]:
    limits = (getattr(config, "raw", None) or {}).get("alerts") or {}
    per_minute = float(limits.get("rejected_webhooks_per_minute", REJECTED_PER_MINUTE))
    minutes = int(limits.get("rejected_webhooks_minutes", REJECTED_MINUTES))
    try:
        rejected = rejections.count(redis, now, minutes)
    except RedisError as exc:
        log.warning("could not read refused webhooks from Redis: %s", exc)
        return {}
    if rejected <= per_minute * minutes:
        return {}
    return {
        "webhook_signatures": {"kind": "webhook_signatures", "count": rejected, "minutes": minutes}
    }


def recipients(session: Session, config: Any) -> list[tuple[str, str, str]]:
    """(channel, address, language) for every person told: active admins and configured contacts."""
    people: list[tuple[str, str, str]] = []
    for op in session.scalars(
        select(Operator).where(Operator.role == "admin", Operator.active.is_(True))
    ):
        language = op.language or "zh-Hant"
        people.append(("email", op.email, language))
        if op.phone:
            people.append(("sms", op.phone, language))
    extra = config.alerts
    default_language = config.default_language
    people += [("email", e.lower(), default_language) for e in extra.emails]
    people += [("sms", p, default_language) for p in extra.phones]
    return list(dict.fromkeys(people))


def _tell(
    session: Session,
    incident: AlertIncident,
    context: dict[str, Any],
    *,
    recovered: bool,
    now: datetime,
    config: Any,
    link: str,
) -> int:
    tz = config.timezone
    told = 0
    for channel, address, language in recipients(session, config):
        what = render("alert_what", language, **context)
        ctx = {
            "what": what,
            "recovered": recovered,
            "at": now.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "opened_at": incident.opened_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "duration": _duration(now - incident.opened_at),
            "company": config.company(language),
            "link": link,
        }
        phase = "recovered" if recovered else "opened"
        key = f"alert:{incident.id}:{phase}:{channel}:{address}"
        if session.scalar(select(OutgoingMessage.id).where(OutgoingMessage.dedupe_key == key)):
            continue
        message = OutgoingMessage(
            channel=channel,
            to=address,
            subject=render("alert_email_subject", language, **ctx) if channel == "email" else None,
            body_text=render(
                "alert_email_body" if channel == "email" else "alert_sms", language, **ctx
            ),
            template=f"alert_{phase}",
            dedupe_key=key,
            status="queued",
            created_at=now,
        )
        session.add(message)
        session.flush()
        enqueue_after_commit(
            session,
            "send_email" if channel == "email" else "send_sms",
            queue="urgent",
            dedupe_key=f"send:{message.id}",
            outgoing_id=message.id,
        )
        told += 1
    return told


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def check_alerts() -> str:
    """Open an incident for each new problem and close those gone for a while; tell admins of both."""
    settings = get_settings()
    config = settings.config
    link = f"{settings.public_base_url.rstrip('/')}/admin/health"
    now = utcnow()
    with session_factory(settings.database_url)() as session:
        redis = redis_connection() if settings.redis_url else None
        found = findings(session, now, redis=redis, config=config)
        open_ = {
            i.key: i
            for i in session.scalars(select(AlertIncident).where(AlertIncident.closed_at.is_(None)))
        }
        opened = closed = 0
        for key, context in found.items():
            incident = open_.get(key)
            if incident is not None:
                if incident.summary.get("clear_since"):
                    incident.summary = {**context}  # back before it counted as recovered
                continue
            incident = AlertIncident(key=key, summary=context, opened_at=now)
            session.add(incident)
            try:
                with session.begin_nested():
                    session.flush()
            except IntegrityError:  # another worker opened it this minute
                continue
            _tell(session, incident, context, recovered=False, now=now, config=config, link=link)
            log.warning("alert opened: %s", key)
            opened += 1
        for key, incident in open_.items():
            if key in found:
                continue
            clear_since = incident.summary.get("clear_since")
            if clear_since is None:
                incident.summary = {**incident.summary, "clear_since": now.isoformat()}
                continue
            if now - datetime.fromisoformat(clear_since) < RECOVER_AFTER:
                continue
            claimed = rowcount(
                session.execute(
                    update(AlertIncident)
                    .where(AlertIncident.id == incident.id, AlertIncident.closed_at.is_(None))
                    .values(closed_at=now)
                    .execution_options(synchronize_session=False)
                )
            )
            if claimed:
                _tell(
                    session,
                    incident,
                    incident.summary,
                    recovered=True,
                    now=now,
                    config=config,
                    link=link,
                )
                log.warning("alert recovered: %s", key)
                closed += 1
        session.commit()
    return f"{opened} alert(s) opened, {closed} recovered"
