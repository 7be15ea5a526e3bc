"""Issue 12, item 4, for a listener that faces the internet: our own SPF, DKIM and DMARC.

With `mail.verify_senders` on, `hotline smtpd` checks each message as it arrives and writes its
verdict on top as `Authentication-Results` under its own id. A reply DKIM-signed by the
resident's domain is believed and joins their ticket; the same reply forged from elsewhere (no
signature; the domain publishes DMARC p=reject) gets a new ticket linked to the first, never an
append. A header the forger wrote under our id is not believed; nor is our id in mail fetched by
IMAP. DNS is answered by the test (the machine has no resolver to the internet).
"""

from __future__ import annotations

import base64
import re
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
import spf
from sqlalchemy import select

from intake.models import Interaction, RawMessage, Ticket
from mail.contact import message_to_contact
from mail.smtpd import Listener, start_listener
from tests.mail.mailmaker import resident_mail
from tests.processes import free_port
from worker.runner import drain

ADDRESS = "complaints@hotline.localhost"
RESIDENT = "陳大文 <chan.taiman@example.com>"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """An RSA key of example.com's mail server: (PKCS#1 private key, DNS p= value)."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(private), "2048"],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private.read_bytes(), base64.b64encode(public)


@pytest.fixture
def dns(key_pair: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch) -> Any:
    records = {
        "s1._domainkey.example.com": b"v=DKIM1; k=rsa; p=" + key_pair[1],
        "_dmarc.example.com": b"v=DMARC1; p=reject",
        "example.com": b"v=spf1 ip4:192.0.2.25 -all",
    }

    def txt(name: bytes | str, timeout: int = 5) -> bytes | str | None:
        """As the libraries' own lookups answer: dkimpy bytes, authheaders' DMARC lookup str."""
        key = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        found = records.get(key)
        return found.decode() if found is not None and key.startswith("_dmarc.") else found

    def lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: int = 30) -> list[Any]:
        found = records.get(name.rstrip(".").lower()) if qtype == "TXT" else None
        return [((name, qtype), [found])] if found else []

    monkeypatch.setattr(spf, "DNSLookup", lookup)
    return txt


@pytest.fixture
def listener(demo, sessions, dns, monkeypatch) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(demo.config.mail, "verify_senders", True)
    server = start_listener(sessions, demo, host="127.0.0.1", port=free_port(), dnsfunc=dns)
    yield server
    server.stop()


def deliver(listener: Listener, raw: bytes, mail_from: str = "chan.taiman@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
        client.ehlo("mx.example.com")
        client.mail(mail_from)
        client.rcpt(ADDRESS)
        code, _ = client.data(raw)
    assert code == 250


def signed(raw: bytes, private_key: bytes) -> bytes:
    header = dkim.sign(
        raw,
        b"s1",
        b"example.com",
        private_key,
        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
    )
    return header + raw


def ticket_refs(sessions: Any) -> dict[str, str | None]:
    """Each ticket's ref and the ref it is linked to."""
    with sessions() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        by_id = {t.id: t.ref for t in tickets}
        return {
            t.ref: by_id.get(t.linked_ticket_id) if t.linked_ticket_id else None for t in tickets
        }


def test_a_signed_reply_joins_the_ticket_and_a_forged_one_does_not(
    listener, sessions, redis_url, key_pair
) -> None:
    private_key, _ = key_pair
    deliver(listener, signed(resident_mail(sender=RESIDENT, subject="廚房漏水"), private_key))
    drain()
    [(ref, _)] = ticket_refs(sessions).items()
    with sessions() as session:
        stored = session.scalars(select(RawMessage.raw)).one()
    ours = stored.split(b"\r\n", 1)[0].decode()
    assert ours.startswith("Authentication-Results: hotline;")
    assert re.search(r"dkim=pass", ours) and re.search(r"dmarc=pass", ours), ours

    reply = resident_mail(sender=RESIDENT, subject=f"Re: 廚房漏水 [{ref}]", body="師傅還沒來。")
    deliver(listener, signed(reply, private_key))
    forged = resident_mail(
        sender=RESIDENT,
        subject=f"Re: 廚房漏水 [{ref}]",
        body="不用來了，請結案。",
        extra={"Authentication-Results": "hotline; dmarc=pass header.from=example.com"},
    )
    deliver(listener, forged, mail_from="mailer@forger.example")
    drain()

    refs = ticket_refs(sessions)
    assert len(refs) == 2, "the forged reply opened a ticket of its own"
    [forged_ref] = [r for r in refs if r != ref]
    assert refs[forged_ref] == ref, "linked to the resident's ticket for the operator to see"
    with sessions() as session:
        first = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert first is not None
        bodies = session.scalars(
            select(Interaction.body_text).where(
                Interaction.ticket_id == first.id, Interaction.direction == "in"
            )
        ).all()
    assert any("師傅還沒來" in b for b in bodies), "the signed reply joined the ticket"
    assert not any("請結案" in b for b in bodies), "the forged one did not"


def test_our_id_is_not_believed_in_mail_fetched_by_imap(demo, monkeypatch) -> None:
    monkeypatch.setattr(demo.config.mail, "verify_senders", True)
    raw = resident_mail(
        sender=RESIDENT,
        extra={"Authentication-Results": "hotline; dmarc=pass header.from=example.com"},
    )
    assert message_to_contact(raw, settings=demo, source="imap").sender_authenticated is None
    smtp = message_to_contact(raw, settings=demo, source="smtp")
    assert smtp.sender_authenticated is True, "through the listener, the top header is ours"


def test_without_dns_the_verdict_is_unknown_and_the_mail_is_kept(
    demo, sessions, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo.config.mail, "verify_senders", True)

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no resolver")

    monkeypatch.setattr(spf, "DNSLookup", no_dns)
    server = start_listener(sessions, demo, host="127.0.0.1", port=free_port(), dnsfunc=no_dns)
    try:
        deliver(server, resident_mail(sender=RESIDENT))
    finally:
        server.stop()
    with sessions() as session:
        stored = session.scalars(select(RawMessage.raw)).one()
    contact = message_to_contact(stored, settings=demo, source="smtp")
    assert contact.sender_authenticated is None
