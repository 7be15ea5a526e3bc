"""One logging set-up for every `hotline` command.

JSON lines when stderr is not a terminal (production, `LOG_FORMAT=json`), readable text in a terminal
(`LOG_FORMAT=text`). Every line carries the ids bound for the work it belongs to (`bind(request_id=...)`,
`job_id`, `message_id`). At INFO and above, phone numbers and email addresses are masked, so a resident's
contact details never reach a log at the default level; message text is never logged at INFO.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "hotline_log_context", default=None
)

# An email address, and a phone number: 8 to 15 digits, an optional +, single spaces or dashes
# between digits (a date such as 2026-12-01, a time or an address like 127.0.0.1 is left alone).
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w.:/+-])(?!\d{4}-\d\d-\d\d)\+?\d(?:[ -]?\d){7,14}(?![\w.:/-])")


def mask(text: str) -> str:
    """Contact details replaced: `+886912345678` -> `+88******78`, `a.b@x.tw` -> `a***@x.tw`."""

    def _email(m: re.Match[str]) -> str:
        local, _, domain = m.group(0).partition("@")
        return f"{local[:1]}***@{domain}"

    def _phone(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) < 8:
            return m.group(0)
        lead = "+" if m.group(0).startswith("+") else ""
        return f"{lead}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"

    return PHONE.sub(_phone, EMAIL.sub(_email, text))


def push(**ids: str | int | None) -> contextvars.Token[dict[str, str] | None]:
    """Attach ids to the log lines that follow; undo with `pop(token)` (or use `bind`)."""
    return _context.set({**bound(), **{k: str(v) for k, v in ids.items() if v is not None}})


def pop(token: contextvars.Token[dict[str, str] | None]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def bind(**ids: str | int | None) -> Iterator[None]:
    """Attach ids (request_id, job_id, message_id...) to every log line written inside the block."""
    token = push(**ids)
    try:
        yield
    finally:
        pop(token)


def bound() -> dict[str, str]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the bound ids onto the record and masks contact details at INFO and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = bound()
        if record.levelno >= logging.INFO:
            message = record.getMessage()
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "ctx", {}),
        }
        if record.exc_info:
            line["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ids)s")

    def format(self, record: logging.LogRecord) -> str:
        ctx = getattr(record, "ctx", {})
        record.ids = (" [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]") if ctx else ""
        return super().format(record)


def configure(fmt: str | None = None, level: str | int | None = None, stream: Any = None) -> None:
    """Install the one handler on the root logger (again: replaces the previous one)."""
    stream = stream or sys.stderr
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "auto").lower()
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.set_name("hotline")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "hotline"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO").upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
