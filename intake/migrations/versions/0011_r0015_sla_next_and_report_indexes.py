"""ticket.sla_next_at: when the SLA sweep next needs to look at a ticket; indexes for reports

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 01:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.models import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_next_at", UTCDateTime(), nullable=True))
    op.create_index("ix_ticket_sla_next_at", "ticket", ["sla_next_at"])
    op.create_index(
        "ix_ticket_unit_category_created", "ticket", ["unit_id", "category", "created_at"]
    )
    op.create_index("ix_interaction_kind_created", "interaction", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_interaction_kind_created", table_name="interaction")
    op.drop_index("ix_ticket_unit_category_created", table_name="ticket")
    op.drop_index("ix_ticket_sla_next_at", table_name="ticket")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("sla_next_at")
