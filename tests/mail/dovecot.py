"""A throwaway Dovecot from Debian's packages for the IMAP tests and the mail benchmark.

Started with run_dovecot.sh beside this file (a copy of shared/tools/run_dovecot.sh that also
includes `extra.conf` from the server's folder); installed with apt-get when missing and we are
root; `ensure_installed()` says why it cannot be. Alice may also sign in with XOAUTH2: Dovecot
asks `TokenIntrospection` (RFC 7662, as a mail provider's OAuth server answers) about the token.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from imapclient import IMAPClient

from tests.processes import free_port

DOVECOT = Path("/usr/sbin/dovecot")
RUN_SCRIPT = Path(__file__).with_name("run_dovecot.sh")  # a copy of shared/tools/run_dovecot.sh
USER, PASSWORD = "alice", "secret"


def ensure_installed() -> str | None:
    """None when Dovecot is there (installing it if we may), else why it cannot be."""
    if DOVECOT.exists() and shutil.which("doveadm"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "dovecot-imapd is not installed and we are not root on Debian to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "dovecot-imapd"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not DOVECOT.exists():
        return f"apt-get install dovecot-imapd failed: {done.stderr.strip()[-300:]}"
    return None


@dataclass
class TokenIntrospection:
    """An OAuth2 token introspection endpoint: the tokens in `active` are alice's, others are not."""

    active: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def start(self) -> str:
        tokens = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                token = parse_qs(self.rfile.read(length).decode()).get("token", [""])[0]
                tokens.asked.append(token)
                known = token in tokens.active
                answer = {"active": "true", "username": USER} if known else {"active": "false"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/introspect"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def oauth2_settings(folder: Path, introspection_url: str) -> None:
    """Dovecot's XOAUTH2/OAUTHBEARER sign-in, checked against `introspection_url`."""
    (folder / "oauth2.conf.ext").write_text(
        f"introspection_mode = post\nintrospection_url = {introspection_url}\n"
        "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
    )
    (folder / "extra.conf").write_text(
        "auth_mechanisms = plain login xoauth2 oauthbearer\n"
        "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
        f"  args = {folder / 'oauth2.conf.ext'}\n}}\n"
    )


@dataclass
class Dovecot:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    tokens: TokenIntrospection | None = None

    @classmethod
    def start(cls, folder: Path, tokens: TokenIntrospection | None = None) -> Dovecot:
        if not RUN_SCRIPT.exists():
            raise RuntimeError(f"{RUN_SCRIPT} is missing")
        if tokens is not None:
            oauth2_settings(folder, tokens.start())
        port = free_port()
        log = open(folder / "stdout.log", "wb")  # noqa: SIM115 - kept open for the process
        process = subprocess.Popen(
            ["sh", str(RUN_SCRIPT), str(folder), str(port)], stdout=log, stderr=log
        )
        server = cls(folder, port, process, tokens)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {(folder / 'dovecot.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError("dovecot did not start listening within 30 s")

    def restart(self) -> None:
        """Start Dovecot again on the same port and mail folder (after its master was killed)."""
        log = open(self.folder / "stdout.log", "ab")  # noqa: SIM115 - kept open for the process
        self.process = subprocess.Popen(
            ["sh", str(RUN_SCRIPT), str(self.folder), str(self.port)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not listen again within 30 s")

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", str(self.folder / "dovecot.conf"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(USER, PASSWORD)
        return client

    def append(
        self, *messages: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()
    ) -> None:
        with self.client() as client:
            for raw in messages:
                client.append(folder, raw, flags=flags)

    def messages(self, folder: str = "INBOX") -> dict[int, dict[bytes, object]]:
        """UID → {BODY[], FLAGS} of every message in `folder` (peeked, flags untouched)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            return client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        self.doveadm("mailbox", "update", "-u", USER, "--uid-validity", str(value), folder)

    def kick(self) -> None:
        """Drop every connection of the test user (a dropped connection, server side)."""
        done = subprocess.run(
            ["doveadm", "-c", str(self.folder / "dovecot.conf"), "kick", USER],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0 and done.stderr.strip():
            raise RuntimeError(f"doveadm kick: {done.stderr.strip()}")

    def reset(self) -> None:
        for folder in ("INBOX", "Processed", "Failed"):
            with contextlib.suppress(RuntimeError):
                self.doveadm("expunge", "-u", USER, "mailbox", folder, "all")

    def stop(self) -> None:
        if self.tokens is not None:
            self.tokens.stop()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.doveadm("stop")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
