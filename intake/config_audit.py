"""Configuration changes in the audit log.

The centre's configuration (departments and their on-call order, routing rules, SLA profiles, hours,
categories, alert contacts, retention: the `HOTLINE_CONFIG` YAML), the standard phrases (the template
files) and the deployment settings a person may change (public address, mail addresses, hosts; never
secrets) are edited outside the application and take effect when a process starts. Every `hotline`
command that starts a long-running process or prepares the database calls `note_changes`: it compares
what it loaded with the snapshot kept in the database and records one `config_changed` entry with each
item's before and after. Many processes starting at once record one entry (a conditional UPDATE).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import audit
from intake.clock import utcnow
from intake.config import Settings
from intake.db import rowcount
from intake.models import AuditEntry, ConfigSnapshot
from intake.phrases import TEMPLATE_DIR

SNAPSHOT_NAME = "current"
OPENING_CHARS = 40


def _address(url: str) -> str:
    """A URL's scheme, host, port and path, without its user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def setting_items(settings: Settings) -> dict[str, Any]:
    """The deployment settings worth auditing; secrets are left out."""
    return {
        "PUBLIC_BASE_URL": settings.public_base_url,
        "MAIL_FROM": settings.mail_from,
        "TWILIO_NUMBER": settings.twilio_number,
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "IMAP_URL": ", ".join(_address(u) for u in settings.imap_urls) or None,
        "SMTP_URL": _address(settings.smtp_url) if settings.smtp_url else None,
        "SMTPD": f"{settings.smtpd_host}:{settings.smtpd_port}",
        "METRICS_ALLOW": ", ".join(settings.metrics_allow),
        "METRICS_TOKEN": "set" if settings.metrics_token else None,
        "LOG_FORMAT": settings.log_format,
    }


def template_items(root: Path = TEMPLATE_DIR) -> dict[str, Any]:
    """Every phrase file by language and name: a digest, and its opening words for people."""
    items: dict[str, Any] = {}
    for path in sorted(root.glob("*/*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = " ".join(data.decode("utf-8", "replace").split())
        items[f"template:{path.parent.name}/{path.stem}"] = {
            "digest": hashlib.sha256(data).hexdigest()[:16],
            "opening": text[:OPENING_CHARS],
        }
    return items


def config_items(raw: dict[str, Any]) -> dict[str, Any]:
    """The YAML configuration as items: one per department, per routing rule, per other section."""
    items: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "departments" and isinstance(value, list):
            for dept in value:
                items[f"department:{dept.get('code')}"] = dept
        elif key == "routing_rules" and isinstance(value, list):
            for position, rule in enumerate(value, start=1):
                items[f"routing_rule:{rule.get('name')}"] = {**rule, "position": position}
        else:
            items[f"section:{key}"] = value
    return items


def snapshot(settings: Settings, template_root: Path = TEMPLATE_DIR) -> dict[str, Any]:
    """Everything audited, as JSON-ready items keyed `kind:name`."""
    items = config_items(settings.config.raw)
    items.update(template_items(template_root))
    items.update({f"setting:{k}": v for k, v in setting_items(settings).items()})
    # Through JSON, so a snapshot compares equal to the one read back from the database.
    return json.loads(json.dumps(items, ensure_ascii=False, sort_keys=True, default=str))


def fingerprint(items: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(items, ensure_ascii=False, sort_keys=True).encode("utf-8")
    ).hexdigest()


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Items added, removed or changed, in a stable order, each with its before and after."""
    return [
        {"item": key, "before": before.get(key), "after": after.get(key)}
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def note_changes(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    role: str | None,
    source: str | None,
    template_root: Path = TEMPLATE_DIR,
) -> AuditEntry | None:
    """Records how the configuration differs from the last snapshot, and keeps the new one.

    The first snapshot of a database is kept without an entry (there is nothing to compare). Returns
    the entry recorded, or None when nothing changed or another process recorded it first."""
    items = snapshot(settings, template_root)
    new = fingerprint(items)
    stored = session.scalar(select(ConfigSnapshot).where(ConfigSnapshot.name == SNAPSHOT_NAME))
    if stored is None:
        try:
            with session.begin_nested():
                session.add(
                    ConfigSnapshot(
                        name=SNAPSHOT_NAME, fingerprint=new, items=items, recorded_at=utcnow()
                    )
                )
        except IntegrityError:
            pass  # another process kept the first snapshot at the same moment
        return None
    if stored.fingerprint == new:
        return None
    before, old = dict(stored.items or {}), stored.fingerprint
    claimed = rowcount(
        session.execute(
            update(ConfigSnapshot)
            .where(ConfigSnapshot.name == SNAPSHOT_NAME, ConfigSnapshot.fingerprint == old)
            .values(fingerprint=new, items=items, recorded_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        return None
    config_file = os.environ.get("HOTLINE_CONFIG") or None
    return audit.record(
        session,
        "config_changed",
        actor=actor,
        role=role,
        source=source,
        target=config_file,
        changes=differences(before, items),
    )
