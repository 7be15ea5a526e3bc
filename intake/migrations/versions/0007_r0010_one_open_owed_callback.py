"""one open voicemail/after-hours/virtual-hold callback per ticket and purpose

Concurrent recording and status posts each found no callback and each inserted one. A partial
unique index makes the second insert fail; `voice.filing.owe_callback` then reads the first.
Duplicates already there are cancelled (the oldest stays) so that the index can be built.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OPEN_OWED = (
    "status IN ('scheduled', 'in_progress')"
    " AND purpose IN ('voicemail', 'after_hours', 'virtual_hold')"
)


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE callback SET status = 'cancelled', outcome = 'duplicate'"
            f" WHERE {OPEN_OWED} AND EXISTS (SELECT 1 FROM callback AS first"
            " WHERE first.ticket_id = callback.ticket_id AND first.purpose = callback.purpose"
            " AND first.status IN ('scheduled', 'in_progress') AND first.id < callback.id)"
        )
    )
    op.create_index(
        "uq_callback_open_owed",
        "callback",
        ["ticket_id", "purpose"],
        unique=True,
        postgresql_where=sa.text(OPEN_OWED),
        sqlite_where=sa.text(OPEN_OWED),
    )


def downgrade() -> None:
    op.drop_index("uq_callback_open_owed", table_name="callback")
