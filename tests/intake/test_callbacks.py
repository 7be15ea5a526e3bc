from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from intake.callbacks import schedule_callback
from intake.models import Callback, Outbox, Ticket
from intake.service import receive
from tests.factories import call_contact


def test_a_missed_call_late_on_a_friday_before_a_holiday_is_due_at_the_next_opening(demo, sessions):
    config = demo.config
    friday_night = datetime(2026, 10, 9, 22, 40, tzinfo=config.timezone)
    receipt = receive(sessions, call_contact(text=""), config, now=friday_night)
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        cb = schedule_callback(
            s,
            ticket,
            phone=ticket.contact_phone,
            purpose="missed_call",
            config=config,
            now=friday_night,
        )
        s.commit()
        assert cb.due_at.astimezone(config.timezone) == datetime(
            2026, 10, 12, 9, 0, tzinfo=config.timezone
        )
        timer = s.scalar(select(Outbox).where(Outbox.job == "place_callback"))
        assert timer.args == {"callback_id": cb.id} and timer.available_at == cb.due_at


def test_three_missed_calls_from_one_number_make_one_callback(demo, sessions):
    config = demo.config
    moment = datetime(2026, 11, 30, 10, 0, tzinfo=config.timezone)
    for _ in range(3):
        receipt = receive(sessions, call_contact(text=""), config, now=moment)
        with sessions() as s:
            ticket = s.get(Ticket, receipt.ticket_id)
            schedule_callback(
                s, ticket, phone="+886912000001", purpose="missed_call", config=config, now=moment
            )
            s.commit()
    with sessions() as s:
        assert len(s.scalars(select(Callback)).all()) == 1
