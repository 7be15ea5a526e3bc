"""Call recordings: downloaded from Twilio by the worker, never inside a webhook request.

`download` is the one place this package talks HTTP to Twilio for media, so timeouts, auth and
errors are decided once. Files are stored content-addressed under the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from intake.config import get_settings
from intake.db import session_factory
from intake.models import Attachment

TIMEOUT_SECONDS = 30
MAX_BYTES = 64 * 1024 * 1024


class RecordingNotReady(RuntimeError):
    """Twilio has not finished the recording yet (or refused us): the job retries later."""


def download(
    url: str, auth: tuple[str, str], timeout: float = TIMEOUT_SECONDS
) -> tuple[bytes, str]:
    """GET `url` with HTTP basic auth; (body, content type). Raises on any non-200 answer."""
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise RecordingNotReady(f"recording larger than {MAX_BYTES} bytes: {url}")
            return body, response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raise RecordingNotReady(f"{exc.code} fetching {url}") from exc


def store(data_dir: Path, content: bytes) -> str:
    """Write `content` once under its sha256 (atomically) and return the digest."""
    digest = hashlib.sha256(content).hexdigest()
    path = data_dir / "attachments" / digest[:2] / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(content)
        os.replace(partial, path)
    return digest


def fetch_recording(attachment_id: int) -> str:
    """Download a recording's audio into the attachment store; a second run is a no-op."""
    settings = get_settings()
    with session_factory(settings.database_url)() as session:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None:
            return "no such attachment"
        if attachment.sha256:
            return "already fetched"
        if not attachment.external_url:
            return "no recording URL"
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            return "no Twilio account: the recording stays a link"
        url = attachment.external_url
    content, content_type = download(url, (settings.twilio_account_sid, settings.twilio_auth_token))
    digest = store(settings.data_dir, content)
    with session_factory(settings.database_url)() as session:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.sha256:
            return "already fetched"
        attachment.sha256 = digest
        attachment.size = len(content)
        if content_type.startswith("audio/"):
            attachment.content_type = content_type
        session.commit()
    return f"stored {len(content)} bytes as {digest[:12]}"
