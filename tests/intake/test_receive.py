from __future__ import annotations

import multiprocessing
import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from intake.models import Event, Interaction, Outbox, Ticket, utcnow
from intake.service import receive
from intake.tickets import enqueue_after_commit
from tests.conftest import _truncate
from tests.factories import call_contact, email_contact


def count(sessions, model, *where):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_it_files_a_new_ticket_with_its_interaction_events_and_outbox(demo, sessions):
    receipt = receive(sessions, email_contact(), demo.config)
    assert receipt.created_ticket and not receipt.duplicate
    assert receipt.ticket_ref == f"HL-{receipt.ticket_id:06d}"
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert (ticket.category, ticket.priority, ticket.status, ticket.language) == (
            "repair",
            "P3",
            "new",
            "zh-Hant",
        )
        assert ticket.resident.name == "陳大文"
        assert ticket.unit.label == "12F-1"
        assert [i.external_id for i in ticket.interactions] == [
            receipt.interaction_id and ticket.interactions[0].external_id
        ]
        assert [e.kind for e in ticket.events] == ["created"]
        jobs = sorted(s.scalars(select(Outbox.job)))
        assert jobs == ["acknowledge", "route_ticket"]


def test_the_same_contact_twice_is_one_ticket_and_one_interaction(demo, sessions):
    contact = email_contact()
    first = receive(sessions, contact, demo.config)
    second = receive(sessions, contact, demo.config)
    assert (
        second.duplicate
        and second.ticket_id == first.ticket_id
        and second.interaction_id == first.interaction_id
    )
    assert count(sessions, Ticket) == 1
    assert count(sessions, Interaction) == 1
    assert count(sessions, Outbox) == 2


def test_an_emergency_goes_to_the_urgent_queue(demo, sessions):
    receipt = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).priority == "P1"
        assert s.scalar(select(Outbox.queue).where(Outbox.job == "route_ticket")) == "urgent"


def test_residents_are_matched_by_normalized_phone(demo, sessions):
    receipt = receive(sessions, call_contact(sender_phone="0912-000-002"), demo.config)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert ticket.contact_phone == "+886912000002"
        assert ticket.resident.name == "李小梅"


def test_an_unknown_sender_still_gets_a_ticket_without_a_resident(demo, sessions):
    receipt = receive(sessions, email_contact(sender_email="stranger@example.org"), demo.config)
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).resident is None


def test_a_reply_lands_on_the_same_ticket(demo, sessions):
    first = email_contact()
    opened = receive(sessions, first, demo.config)
    reply = receive(
        sessions,
        email_contact(subject="回覆：廚房漏水", text="補充照片", references=(first.external_id,)),
        demo.config,
    )
    assert reply.ticket_id == opened.ticket_id and not reply.created_ticket
    assert count(sessions, Interaction, Interaction.ticket_id == opened.ticket_id) == 2


def test_a_stranger_naming_a_ticket_gets_a_new_linked_ticket(demo, sessions):
    opened = receive(sessions, email_contact(), demo.config)
    stranger = receive(
        sessions,
        email_contact(sender_email="stranger@example.org", ticket_ref=opened.ticket_ref),
        demo.config,
    )
    assert stranger.created_ticket and stranger.ticket_id != opened.ticket_id
    assert stranger.linked_to == opened.ticket_ref
    assert count(sessions, Interaction, Interaction.ticket_id == opened.ticket_id) == 1


def test_a_trusted_reference_appends_even_from_another_address(demo, sessions):
    opened = receive(sessions, email_contact(), demo.config)
    other = receive(
        sessions,
        email_contact(
            sender_email="family@example.org", ticket_ref=opened.ticket_ref, ticket_ref_trusted=True
        ),
        demo.config,
    )
    assert other.ticket_id == opened.ticket_id


def test_a_reply_reopens_a_resolved_ticket_and_a_long_closed_one_opens_a_linked_ticket(
    demo, sessions
):
    first = email_contact()
    opened = receive(sessions, first, demo.config)
    with sessions() as s:
        s.get(Ticket, opened.ticket_id).status = "resolved"
        s.commit()
    again = receive(
        sessions, email_contact(references=(first.external_id,), text="還是漏水"), demo.config
    )
    assert again.reopened and again.ticket_id == opened.ticket_id
    with sessions() as s:
        ticket = s.get(Ticket, opened.ticket_id)
        ticket.status, ticket.closed_at = "closed", utcnow() - timedelta(days=90)
        s.commit()
    late = receive(
        sessions, email_contact(references=(first.external_id,), text="又漏水了"), demo.config
    )
    assert late.created_ticket and late.linked_to == opened.ticket_ref


def test_automatic_mail_is_stored_but_not_acknowledged(demo, sessions):
    receive(
        sessions, email_contact(sender_kind="auto_reply", text="I am out of office"), demo.config
    )
    assert count(sessions, Outbox, Outbox.job == "acknowledge") == 0
    assert count(sessions, Interaction) == 1


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=20))
def test_any_interleaving_of_duplicates_gives_one_ticket_per_external_id(
    demo, sessions, db_url, order
):
    _truncate(db_url)
    contacts = {
        n: email_contact(external_id=f"<dup-{n}@example.com>", sender_email=f"r{n}@example.com")
        for n in set(order)
    }
    for n in order:
        receive(sessions, contacts[n], demo.config)
    with sessions() as s:
        per_id = dict(
            s.execute(
                select(Interaction.external_id, func.count()).group_by(Interaction.external_id)
            ).all()
        )
        assert per_id == {c.external_id: 1 for c in contacts.values()}
        assert s.scalar(select(func.count()).select_from(Ticket)) == len(contacts)


def _receive_all(args):
    database_url, seed, n = args
    from intake.config import load_config
    from intake.db import session_factory

    config = load_config()
    sessions = session_factory(database_url)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    refs = {}
    for i in order:
        contact = email_contact(
            external_id=f"<storm-{i}@example.com>",
            sender_email=f"storm{i}@example.com",
            text=f"第{i}號：漏水",
        )
        refs[i] = receive(sessions, contact, config).ticket_ref
    return refs


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "contacts"), [(8, 200)])
def test_many_processes_receiving_the_same_contacts_make_one_ticket_each(
    db_url, demo, sessions, processes, contacts
):
    if db_url.startswith("sqlite"):
        processes, contacts = 4, 50
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        results = pool.map(_receive_all, [(db_url, seed, contacts) for seed in range(processes)])
    assert all(r == results[0] for r in results), (
        "every process must be told the same ticket for a contact"
    )
    assert count(sessions, Ticket) == contacts
    assert count(sessions, Interaction) == contacts
    assert count(sessions, Event, Event.kind == "created") == contacts
    assert len(set(results[0].values())) == contacts


def test_references_stay_unique_and_follow_the_configured_prefix(demo, sessions):
    refs = {receive(sessions, email_contact(), demo.config).ticket_ref for _ in range(20)}
    assert len(refs) == 20 and all(r.startswith("HL-") and len(r) == 9 for r in refs)


def test_automatic_mail_that_answers_no_ticket_is_kept_closed_and_not_routed(demo, sessions):
    receipt = receive(
        sessions,
        email_contact(sender_kind="list", subject="Newsletter", text="本月優惠"),
        demo.config,
    )
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert ticket.status == "closed"
        assert [e.kind for e in ticket.events] == ["created", "filed_automatic"]
        assert s.scalar(select(func.count()).select_from(Outbox)) == 0


def test_an_automatic_message_reporting_an_emergency_still_reaches_the_queue(demo, sessions):
    receipt = receive(
        sessions,
        email_contact(sender_kind="noreply", subject="Fire alarm", text="火警 B座 3樓"),
        demo.config,
    )
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).status == "new"
        assert s.scalar(select(Outbox.job)) == "route_ticket"


def test_the_callers_bookkeeping_commits_with_the_ticket_or_not_at_all(demo, sessions):
    def failing(session, receipt):  # type: ignore[no-untyped-def]
        raise RuntimeError("bookkeeping failed")

    contact = email_contact()
    with pytest.raises(RuntimeError):
        receive(sessions, contact, demo.config, also=failing)
    assert count(sessions, Ticket) == 0 and count(sessions, Interaction) == 0

    seen = []

    def bookkeeping(session, receipt):  # type: ignore[no-untyped-def]
        seen.append(receipt)
        enqueue_after_commit(session, "noted", dedupe_key=f"noted:{len(seen)}")

    first = receive(sessions, contact, demo.config, also=bookkeeping)
    again = receive(sessions, contact, demo.config, also=bookkeeping)
    assert seen == [first, again] and again.duplicate
    assert count(sessions, Outbox, Outbox.job == "noted") == 2


def test_a_signed_reference_vouches_only_for_its_own_ticket(demo, sessions):
    """Issue 12 #2: the stranger's own signed id (ticket A) plus the neighbour's Message-ID
    (ticket B) in References must not land on B, and must not make the stranger B's participant."""
    neighbours = receive(sessions, email_contact(), demo.config)
    strangers = receive(sessions, email_contact(sender_email="stranger@example.org"), demo.config)
    with sessions() as s:
        neighbour_id = s.scalars(
            select(Interaction.external_id).where(Interaction.ticket_id == neighbours.ticket_id)
        ).one()
    sneaky = receive(
        sessions,
        email_contact(
            sender_email="stranger@example.org",
            ticket_ref=strangers.ticket_ref,
            ticket_ref_trusted=True,
            references=(f"<hl.{strangers.ticket_ref.lower()}.1.0123@x>", neighbour_id),
        ),
        demo.config,
    )
    assert sneaky.ticket_id == strangers.ticket_id
    assert count(sessions, Interaction, Interaction.ticket_id == neighbours.ticket_id) == 1
    again = receive(
        sessions,
        email_contact(sender_email="stranger@example.org", references=(neighbour_id,)),
        demo.config,
    )
    assert again.ticket_id != neighbours.ticket_id and again.linked_to == neighbours.ticket_ref
    assert count(sessions, Interaction, Interaction.ticket_id == neighbours.ticket_id) == 1


def test_a_sender_that_failed_authentication_never_appends_or_reopens(demo, sessions):
    """Issue 12 #4: a spoofed From (DMARC failed at the trusted mail server) is not a participant,
    even with the ticket's own signed reference: a new linked ticket, the original untouched."""
    opened = receive(sessions, email_contact(), demo.config)
    with sessions() as s:
        ticket = s.get(Ticket, opened.ticket_id)
        ticket.status = "resolved"
        first_id = ticket.interactions[0].external_id
        s.commit()
    for overrides in (
        {"references": (first_id,)},
        {"ticket_ref": opened.ticket_ref, "ticket_ref_trusted": True},
        {"ticket_ref": opened.ticket_ref},
    ):
        spoofed = receive(
            sessions, email_contact(sender_authenticated=False, **overrides), demo.config
        )
        assert spoofed.created_ticket and spoofed.linked_to == opened.ticket_ref
        assert not spoofed.reopened
    assert count(sessions, Interaction, Interaction.ticket_id == opened.ticket_id) == 1
    with sessions() as s:
        assert s.get(Ticket, opened.ticket_id).status == "resolved"
    verified = receive(
        sessions, email_contact(sender_authenticated=True, references=(first_id,)), demo.config
    )
    assert verified.ticket_id == opened.ticket_id and verified.reopened
