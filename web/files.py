"""Stored files (email attachments, voicemail recordings) served through the app.

Files are content-addressed by sha256 under the data directory. The browser never talks to
Twilio: recordings are downloaded by the voice worker, and this route streams the local copy.
"""

from __future__ import annotations

from pathlib import Path

from intake.models import Attachment

# Content types a browser may render or play in place; everything else is sent as octet-stream.
PLAYABLE = {"audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "audio/mp4", "audio/webm"}
IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def stored_path(data_dir: Path, attachment: Attachment) -> Path | None:
    sha = attachment.sha256 or ""
    if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        return None
    for candidate in (
        data_dir / "attachments" / sha[:2] / sha,
        data_dir / "attachments" / sha,
        data_dir / "blobs" / sha[:2] / sha,
    ):
        if candidate.is_file():
            return candidate
    return None


def safe_content_type(content_type: str) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    if base in PLAYABLE or base in IMAGES or base in ("application/pdf", "text/plain"):
        return base + ("; charset=utf-8" if base == "text/plain" else "")
    return "application/octet-stream"
