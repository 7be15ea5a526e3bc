"""The standardized ticket and everything around it (ARCHITECTURE.md, "The standardized ticket")."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, ORMExecuteState, mapped_column, relationship
from sqlalchemy.orm import Session as OrmSession

from intake.clock import utcnow
from intake.constants import OPEN_STATUSES, SPOKEN_LANGUAGES


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Department(Base):
    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_zh_hant: Mapped[str] = mapped_column(String(120))
    name_zh_hans: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))

    def name(self, language: str) -> str:
        return {"zh-Hans": self.name_zh_hans, "en": self.name_en}.get(language, self.name_zh_hant)


class Building(Base):
    __tablename__ = "building"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    units: Mapped[list[Unit]] = relationship(back_populates="building")


class Unit(Base):
    __tablename__ = "unit"
    __table_args__ = (UniqueConstraint("building_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"))
    label: Mapped[str] = mapped_column(String(40))
    building: Mapped[Building] = relationship(back_populates="units")


class Resident(Base):
    __tablename__ = "resident"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(10))
    spoken_language: Mapped[str | None] = mapped_column(String(10))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    preferred_contact_time: Mapped[str | None] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    # Declines notices that are not urgent (planned works); incidents still reach them.
    notices_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    unit: Mapped[Unit | None] = relationship()
    contact_points: Mapped[list[ContactPoint]] = relationship(back_populates="resident")


class ContactPoint(Base):
    """A phone number (E.164) or an email address (lower-cased) belonging to a resident."""

    __tablename__ = "contact_point"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(254))
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    unreachable_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resident: Mapped[Resident] = relationship(back_populates="contact_points")


class Operator(Base):
    __tablename__ = "operator"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    language: Mapped[str] = mapped_column(String(10), default="zh-Hant")
    phone: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Raised on sign-out and on a password, role or department change: every session signed in
    # under an older generation ends (the web session carries the generation it was given).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    department: Mapped[Department | None] = relationship()


class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_queue", "status", "priority", "created_at"),
        Index("ix_ticket_unit_category_created", "unit_id", "category", "created_at"),
        Index("ix_ticket_category_created", "category", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(20), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(40), index=True)
    priority: Mapped[str] = mapped_column(String(2), index=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    needs_paging: Mapped[bool] = mapped_column(Boolean, default=False)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    contact_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    contact_email: Mapped[str | None] = mapped_column(String(254), index=True)
    language: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    sla_profile: Mapped[str | None] = mapped_column(String(40))
    first_response_due_at: Mapped[datetime | None] = mapped_column()
    resolution_due_at: Mapped[datetime | None] = mapped_column(index=True)
    first_responded_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    # When the SLA sweep next needs to look (NULL: at its next run); see intake.sla.
    sla_next_at: Mapped[datetime | None] = mapped_column(index=True)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    resolution_note: Mapped[str | None] = mapped_column(Text)  # internal: staff only
    public_note: Mapped[str | None] = mapped_column(Text)  # the answer Open311 publishes
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department | None] = relationship()
    assignee: Mapped[Operator | None] = relationship()
    resident: Mapped[Resident | None] = relationship()
    unit: Mapped[Unit | None] = relationship()
    incident: Mapped[Incident | None] = relationship()
    interactions: Mapped[list[Interaction]] = relationship(
        back_populates="ticket", order_by="Interaction.id"
    )
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")
    callbacks: Mapped[list[Callback]] = relationship(
        back_populates="ticket", order_by="Callback.id"
    )


class Interaction(Base):
    """One entry on a ticket's timeline: email in/out, call, voicemail, transcript, note, SMS, callback attempt.

    (channel, external_id) is the idempotency key of everything that arrives from outside.
    """

    __tablename__ = "interaction"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_interaction_kind_created", "kind", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(300))
    sender: Mapped[str | None] = mapped_column(String(300))
    recipient: Mapped[str | None] = mapped_column(String(300))
    subject: Mapped[str | None] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    quoted_from: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(10))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped[Ticket] = relationship(back_populates="interactions")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="interaction")


class Attachment(Base):
    """A file stored content-addressed (sha256) under the data directory; recordings keep their Twilio SID."""

    __tablename__ = "attachment"
    __table_args__ = (UniqueConstraint("interaction_id", "sha256", "filename"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interaction.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    external_url: Mapped[str | None] = mapped_column(String(500))
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    interaction: Mapped[Interaction] = relationship(back_populates="attachments")


class Call(Base):
    __tablename__ = "call"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    parent_call_sid: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="ringing")
    status_sequence: Mapped[int] = mapped_column(Integer, default=-1)
    language: Mapped[str | None] = mapped_column(String(10))
    ivr_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    purpose: Mapped[str | None] = mapped_column(String(30))
    answered_by: Mapped[str | None] = mapped_column(String(30))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    filed: Mapped[bool] = mapped_column(Boolean, default=False)
    greeted: Mapped[bool] = mapped_column(Boolean, default=False)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callback.id"))
    queue_entered_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallStatusEvent(Base):
    """Every status callback as Twilio sent it, once per (CallSid, SequenceNumber)."""

    __tablename__ = "call_status_event"
    __table_args__ = (UniqueConstraint("call_sid", "sequence_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    sequence_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


OPEN_OWED_CALLBACKS = (
    "status IN ('scheduled', 'in_progress')"
    " AND purpose IN ('voicemail', 'after_hours', 'virtual_hold')"
)


class Callback(Base):
    """A call the centre owes a resident. The row is the truth; an RQ scheduled job is only the timer."""

    __tablename__ = "callback"
    # ix_callback_purpose_status: the console counts missed calls not yet returned on every page.
    # uq_callback_open_owed: one open callback a call owes (voice.filing.owe_callback) per ticket
    # and purpose, however many webhooks race to owe it (migration 0010).
    __table_args__ = (
        Index("ix_callback_due", "status", "due_at"),
        Index("ix_callback_purpose_status", "purpose", "status"),
        Index(
            "uq_callback_open_owed",
            "ticket_id",
            "purpose",
            unique=True,
            postgresql_where=text(OPEN_OWED_CALLBACKS),
            sqlite_where=text(OPEN_OWED_CALLBACKS),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    purpose: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    due_at: Mapped[datetime] = mapped_column()
    window_end_at: Mapped[datetime | None] = mapped_column()
    queued_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    outcome: Mapped[str | None] = mapped_column(String(30))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("operator.id"))
    current_call_sid: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ticket: Mapped[Ticket] = relationship(back_populates="callbacks")
    # The operator who took it on (an operator's callback, or one handed to a person).
    claimer: Mapped[Operator | None] = relationship(foreign_keys=[claimed_by])
    attempt_log: Mapped[list[CallbackAttempt]] = relationship(
        back_populates="callback", order_by="CallbackAttempt.attempt_no"
    )


class CallbackAttempt(Base):
    __tablename__ = "callback_attempt"
    __table_args__ = (UniqueConstraint("callback_id", "attempt_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callback.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="placing")
    outcome: Mapped[str | None] = mapped_column(String(30))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    callback: Mapped[Callback] = relationship(back_populates="attempt_log")


class Event(Base):
    """The audit timeline: who did what to a ticket, and why."""

    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200), default="system")
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped[Ticket] = relationship(back_populates="events")


class Outbox(Base):
    """Work committed together with the data it needs; the relay moves it onto RQ."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "available_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(80))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queue: Mapped[str] = mapped_column(String(40), default="default")
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()
    # Set when the relay sent this row to RQ together with others in one batch job.
    rq_job_id: Mapped[str | None] = mapped_column(String(100))


class OutgoingMessage(Base):
    """Every message we send (email, SMS), kept whether or not a relay is configured."""

    __tablename__ = "outgoing_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    channel: Mapped[str] = mapped_column(String(10))
    to: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    references: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    template: Mapped[str | None] = mapped_column(String(80))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class RawMessage(Base):
    """Inbound mail exactly as received, stored before any parsing (store first, quarantine, replay)."""

    __tablename__ = "raw_message"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    mailbox: Mapped[str | None] = mapped_column(String(300))
    uidvalidity: Mapped[int | None] = mapped_column(Integer)
    uid: Mapped[int | None] = mapped_column(Integer)
    envelope_from: Mapped[str | None] = mapped_column(String(300))
    envelope_to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="stored", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    classification: Mapped[str | None] = mapped_column(String(20))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()


class ImapCursor(Base):
    __tablename__ = "imap_cursor"
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(300), unique=True)
    uidvalidity: Mapped[int | None] = mapped_column(Integer)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChannelHealth(Base):
    """What each intake channel last did, for the health page and loud failure."""

    __tablename__ = "channel_health"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="unknown")
    last_ok_at: Mapped[datetime | None] = mapped_column()
    last_error_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Page(Base):
    """An emergency page: the on-call chain is called one person at a time until someone presses 1."""

    __tablename__ = "page"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    chain: Mapped[list[Any]] = mapped_column(JSON, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="paging")
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DepartmentNotification(Base):
    """One thing a department (or a supervisor) was told; digest items wait for their digest mail."""

    __tablename__ = "department_notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(20))
    outgoing_message_id: Mapped[int | None] = mapped_column(ForeignKey("outgoing_message.id"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SavedView(Base):
    """A queue filter an operator saved under a name (the query string of the queue page)."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("operator_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAttempt(Base):
    """A failed sign-in, counted per account and per client address by every web process."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_time", "key", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The queue's default order (priority, then resolution due, then id) over open tickets only.
Index(
    "ix_ticket_open_urgency",
    Ticket.priority,
    Ticket.resolution_due_at,
    Ticket.id,
    postgresql_where=Ticket.status.in_(OPEN_STATUSES),
    sqlite_where=Ticket.status.in_(OPEN_STATUSES),
)
Index(
    "ix_ticket_department_urgency",
    Ticket.department_id,
    Ticket.priority,
    Ticket.resolution_due_at,
    Ticket.id,
    postgresql_where=Ticket.status.in_(OPEN_STATUSES),
    sqlite_where=Ticket.status.in_(OPEN_STATUSES),
)


class ApiClient(Base):
    """A program that uses the JSON API or Open311: only the sha256 of its token is kept.

    `role` names a set of scopes (see web/api/auth.py); `department_id` restricts what it sees.
    """

    __tablename__ = "api_client"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(12))
    role: Mapped[str] = mapped_column(String(20), default="operator")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    department: Mapped[Department | None] = relationship()


INCIDENT_KINDS = ("incident", "planned")
INCIDENT_STATUSES = ("active", "resolved")
# An incident is worded per script, and in Cantonese for the phone announcement.
INCIDENT_TEXT_LANGUAGES = SPOKEN_LANGUAGES


class Incident(Base):
    """One building-wide problem or planned work: many contacts, one answer (intake/incidents.py)."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_status", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="incident")
    category: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Per language (zh-Hant, zh-Hans, en, yue): what residents read and callers hear.
    texts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Unit labels the incident is limited to (empty: the whole buildings).
    units: Mapped[list[Any]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    expected_end_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    buildings: Mapped[list[Building]] = relationship(secondary="incident_building")


class IncidentBuilding(Base):
    __tablename__ = "incident_building"
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), primary_key=True)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("building.id"), primary_key=True, index=True
    )


class IncidentContact(Base):
    """A call or an email about an incident: it was absorbed (no ticket) or linked (a ticket).
    (channel, external_id) is the CallSid or the Message-ID: a retried webhook adds nothing."""

    __tablename__ = "incident_contact"
    __table_args__ = (UniqueConstraint("incident_id", "channel", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(300))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentNotice(Base):
    """One notice of one step (declared, update:N, resolved) to one address: at most one, however
    often the sending job runs (the unique constraint decides)."""

    __tablename__ = "incident_notice"
    __table_args__ = (UniqueConstraint("incident_id", "step", "channel", "to"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    step: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    to: Mapped[str] = mapped_column(String(254))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    language: Mapped[str] = mapped_column(String(10))
    outgoing_message_id: Mapped[int | None] = mapped_column(ForeignKey("outgoing_message.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- the operators' desk (live calls to a person) --------------------------------------------

PRESENCE_STATES = ("available", "on_call", "wrap_up", "away")
LIVE_OFFER = "status IN ('ringing', 'accepted')"


class OperatorPresence(Base):
    """An operator at the desk: state, spoken languages (voice keys), the device an offer rings."""

    __tablename__ = "operator_presence"
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="away")
    languages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    device: Mapped[str | None] = mapped_column(String(120))
    since: Mapped[datetime] = mapped_column(default=utcnow)
    idle_since: Mapped[datetime | None] = mapped_column()
    wrap_until: Mapped[datetime | None] = mapped_column()
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)
    operator: Mapped[Operator] = relationship()


class DeskCall(Base):
    """A caller who asked for a person: waiting, connected, then ended, abandoned or sent on."""

    __tablename__ = "desk_call"
    __table_args__ = (Index("ix_desk_call_status_entered", "status", "entered_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id"), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    entered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    transferred_to: Mapped[str | None] = mapped_column(String(80))
    disposition: Mapped[str | None] = mapped_column(String(40))
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    wrap_seconds: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    call: Mapped[Call] = relationship()
    operator: Mapped[Operator | None] = relationship()


class DeskOffer(Base):
    """One caller offered to one operator. At most one live offer per caller and per operator."""

    __tablename__ = "desk_offer"
    __table_args__ = (
        Index(
            "uq_desk_offer_live_call",
            "desk_call_id",
            unique=True,
            postgresql_where=text(LIVE_OFFER),
            sqlite_where=text(LIVE_OFFER),
        ),
        Index(
            "uq_desk_offer_live_operator",
            "operator_id",
            unique=True,
            postgresql_where=text(LIVE_OFFER),
            sqlite_where=text(LIVE_OFFER),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    desk_call_id: Mapped[int] = mapped_column(ForeignKey("desk_call.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="ringing")
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    desk_call: Mapped[DeskCall] = relationship()
    operator: Mapped[Operator] = relationship()


class DeskTransfer(Base):
    """A live desk call handed on by its operator: cold (the caller is moved at once) or warm (the
    target is dialled into the call's conference and talks with the operator first)."""

    __tablename__ = "desk_transfer"
    id: Mapped[int] = mapped_column(primary_key=True)
    desk_call_id: Mapped[int] = mapped_column(ForeignKey("desk_call.id"), index=True)
    from_operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"))
    mode: Mapped[str] = mapped_column(String(10))  # warm | cold
    target: Mapped[str] = mapped_column(String(254))  # a department code, or an operator's email
    target_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"))
    # dialling → consulting (warm: the target took it) → completed; or failed / canceled
    status: Mapped[str] = mapped_column(String(20), default="dialling")
    number_index: Mapped[int] = mapped_column(Integer, default=0)
    target_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    desk_call: Mapped[DeskCall] = relationship()
    from_operator: Mapped[Operator] = relationship(foreign_keys=[from_operator_id])


# The dashboard's clocks still running (intake/rollup.py reads these live).
Index(
    "ix_ticket_first_response_running",
    Ticket.first_response_due_at,
    Ticket.created_at,
    postgresql_where=Ticket.first_responded_at.is_(None),
    sqlite_where=Ticket.first_responded_at.is_(None),
)
Index(
    "ix_ticket_resolution_running",
    Ticket.resolution_due_at,
    Ticket.created_at,
    postgresql_where=Ticket.resolved_at.is_(None),
    sqlite_where=Ticket.resolved_at.is_(None),
)


def _sla_clock_moved(target: Ticket, value: Any, oldvalue: Any, initiator: Any) -> None:
    """A due time, an answer, a resolution or a status changed: the SLA sweep looks again."""
    if value != oldvalue:
        target.sla_next_at = None


for _attribute in (
    Ticket.status,
    Ticket.first_response_due_at,
    Ticket.resolution_due_at,
    Ticket.first_responded_at,
    Ticket.resolved_at,
    Ticket.escalation_level,
):
    event.listen(_attribute, "set", _sla_clock_moved)


class AuditEntry(Base):
    """Who did what, when and from where (`intake.audit`): append-only, kept per retention."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AlertIncident(Base):
    """Something admins were told is wrong (`worker.alerts`): opened once, closed once it recovers."""

    __tablename__ = "alert_incident"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


Index(
    "uq_alert_incident_open",
    AlertIncident.key,
    unique=True,
    postgresql_where=AlertIncident.closed_at.is_(None),
    sqlite_where=AlertIncident.closed_at.is_(None),
)


class ConfigSnapshot(Base):
    """The configuration last seen by a starting process (`intake.config_audit`), to tell changes."""

    __tablename__ = "config_snapshot"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    items: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppendOnly(RuntimeError):
    """An audit entry was about to be changed or deleted outside a retention purge."""


@event.listens_for(AuditEntry, "before_update")
def _no_update(*_: Any) -> None:
    raise AppendOnly("audit entries cannot be changed")


@event.listens_for(AuditEntry, "before_delete")
def _no_delete(*_: Any) -> None:
    raise AppendOnly("audit entries cannot be deleted")


@event.listens_for(OrmSession, "do_orm_execute")
def _no_bulk_change(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.execution_options.get("audit_purge"):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is AuditEntry:
        raise AppendOnly("audit entries cannot be changed or deleted")


# --- the dashboard's daily roll-up (intake/rollup.py) ------------------------------------------


class ReportDay(Base):
    """One whole local day's tickets of one channel, category, department and building: counts,
    SLA clocks and satisfaction, summed so any period adds them up (intake/rollup.py)."""

    __tablename__ = "report_day"
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(40))
    department_id: Mapped[int | None] = mapped_column(Integer)
    building_id: Mapped[int | None] = mapped_column(Integer)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    # Tickets linked to an incident (the hot spots count each incident once instead).
    linked: Mapped[int] = mapped_column(Integer, default=0)
    # First response and resolution clocks: answered in time, answered late, not answered yet.
    first_response_met: Mapped[int] = mapped_column(Integer, default=0)
    first_response_late: Mapped[int] = mapped_column(Integer, default=0)
    first_response_open: Mapped[int] = mapped_column(Integer, default=0)
    resolution_met: Mapped[int] = mapped_column(Integer, default=0)
    resolution_late: Mapped[int] = mapped_column(Integer, default=0)
    resolution_open: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction_sum: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction_count: Mapped[int] = mapped_column(Integer, default=0)


class ReportDayState(Base):
    """A local day the roll-up holds, in which time zone, and its tickets' durations in minutes
    (medians need every value)."""

    __tablename__ = "report_day_state"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    first_response_minutes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    resolution_minutes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportStale(Base):
    """A ticket created on this UTC day (YYYY-MM-DD) was added or changed since the roll-up last
    looked. Written by database triggers on `ticket` (migration 0017), so no writer can forget."""

    __tablename__ = "report_stale"
    id: Mapped[int] = mapped_column(primary_key=True)
    utc_day: Mapped[str] = mapped_column(String(10))
