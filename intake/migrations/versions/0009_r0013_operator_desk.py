"""the operators' desk: presence, callers waiting for a person, offers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

LIVE_OFFER = "status IN ('ringing', 'accepted')"


def upgrade() -> None:
    op.create_table(
        "operator_presence",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(120), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("idle_since", UTCDateTime(), nullable=True),
        sa.Column("wrap_until", UTCDateTime(), nullable=True),
        sa.Column("missed_offers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name="fk_operator_presence_operator_id_operator"
        ),
        sa.PrimaryKeyConstraint("operator_id", name="pk_operator_presence"),
    )
    op.create_table(
        "desk_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("language", sa.String(10), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("transferred_to", sa.String(80), nullable=True),
        sa.Column("disposition", sa.String(40), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("wrap_seconds", sa.Integer(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name="fk_desk_call_call_id_call"),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name="fk_desk_call_operator_id_operator"
        ),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"], name="fk_desk_call_ticket_id_ticket"),
        sa.PrimaryKeyConstraint("id", name="pk_desk_call"),
        sa.UniqueConstraint("call_id", name="uq_desk_call_call_id"),
        sa.UniqueConstraint("call_sid", name="uq_desk_call_call_sid"),
    )
    op.create_index("ix_desk_call_entered_at", "desk_call", ["entered_at"])
    op.create_index("ix_desk_call_status_entered", "desk_call", ["status", "entered_at"])
    op.create_table(
        "desk_offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_call_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["desk_call_id"], ["desk_call.id"], name="fk_desk_offer_desk_call_id_desk_call"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name="fk_desk_offer_operator_id_operator"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_desk_offer"),
        sa.UniqueConstraint("call_sid", name="uq_desk_offer_call_sid"),
    )
    op.create_index("ix_desk_offer_desk_call_id", "desk_offer", ["desk_call_id"])
    op.create_index("ix_desk_offer_operator_id", "desk_offer", ["operator_id"])
    for name, column in (
        ("uq_desk_offer_live_call", "desk_call_id"),
        ("uq_desk_offer_live_operator", "operator_id"),
    ):
        op.create_index(
            name,
            "desk_offer",
            [column],
            unique=True,
            postgresql_where=sa.text(LIVE_OFFER),
            sqlite_where=sa.text(LIVE_OFFER),
        )


def downgrade() -> None:
    op.drop_table("desk_offer")
    op.drop_table("desk_call")
    op.drop_table("operator_presence")
