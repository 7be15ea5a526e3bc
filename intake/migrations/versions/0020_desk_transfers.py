"""desk transfers: who handed a live desk call to whom, warm or cold, and how it went

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.models import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_transfer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_call_id", sa.Integer(), nullable=False),
        sa.Column("from_operator_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=254), nullable=False),
        sa.Column("target_operator_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("number_index", sa.Integer(), nullable=False),
        sa.Column("target_call_sid", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["desk_call_id"], ["desk_call.id"]),
        sa.ForeignKeyConstraint(["from_operator_id"], ["operator.id"]),
        sa.ForeignKeyConstraint(["target_operator_id"], ["operator.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target_call_sid"),
    )
    op.create_index("ix_desk_transfer_desk_call_id", "desk_transfer", ["desk_call_id"])


def downgrade() -> None:
    op.drop_index("ix_desk_transfer_desk_call_id", table_name="desk_transfer")
    op.drop_table("desk_transfer")
