"""Attachments and inline images, stored content-addressed under ``data_dir/attachments``.

The same file sent twice is stored once (``sha[:2]/sha``); the write is atomic so a crash never
leaves half a file under its final name. Parts over the size limits are listed, not stored.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from intake.contact import InboundAttachment

MAX_FILENAME_CHARS = 120
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*\u202a-\u202e\u2066-\u2069]')


@dataclass(frozen=True)
class Limits:
    """Per file, in total and how many (`mail.max_attachment_bytes` and its neighbours)."""

    per_file: int
    total: int
    count: int


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A name safe on every filesystem and in a download header: no path, controls, bidi tricks
    or reserved characters; the extension kept; a generated name when nothing is left."""
    text = unicodedata.normalize("NFC", name or "").replace("\ufffd", "_")
    text = re.split(r"[/\\]", text)[-1]
    text = _UNSAFE.sub("_", text).strip(" .")
    if len(text) > MAX_FILENAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:15] if dot and len(ext) <= 15 else ""
        text = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + ("." + ext if ext else "")
    if not text or text.upper().split(".")[0] in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        text = f"attachment-{index}{ext}"
    return text


def store_blob(data_dir: Path, data: bytes) -> str:
    """Write `data` under its SHA-256 once (atomic rename) and return the hex digest."""
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(data_dir) / "attachments" / digest[:2]
    target = folder / digest
    if target.exists() and target.stat().st_size == len(data):
        return digest
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


@dataclass(frozen=True)
class Candidate:
    """One attachment-like MIME part, already decoded."""

    filename: str | None
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None


def store_attachments(
    data_dir: Path, candidates: list[Candidate], limits: Limits
) -> tuple[tuple[InboundAttachment, ...], list[dict[str, object]]]:
    """Stored attachments, and a list of skipped ones (too big, too many) with the reason."""
    stored: list[InboundAttachment] = []
    skipped: list[dict[str, object]] = []
    total = 0
    for index, part in enumerate(candidates, start=1):
        name = safe_filename(part.filename, part.content_type, index)
        size = len(part.data)
        reason = None
        if len(stored) >= limits.count:
            reason = "too many attachments"
        elif size > limits.per_file:
            reason = f"larger than {limits.per_file} bytes"
        elif total + size > limits.total:
            reason = f"message attachments exceed {limits.total} bytes"
        if reason:
            skipped.append({"filename": name, "size": size, "reason": reason})
            continue
        total += size
        stored.append(
            InboundAttachment(
                filename=name,
                content_type=part.content_type,
                size=size,
                sha256=store_blob(data_dir, part.data),
                inline=part.inline,
                content_id=part.content_id,
            )
        )
    return tuple(stored), skipped
