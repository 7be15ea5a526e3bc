"""report_day: the dashboard's daily roll-up; report_stale, kept by triggers on ticket; indexes
for the live part (clocks still running, repeat repairs)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.models import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The columns a dashboard figure reads: changing any marks the ticket's creation day stale.
WATCHED = (
    "created_at, channel, category, department_id, unit_id, merged_into_id, incident_id,"
    " first_response_due_at, first_responded_at, resolution_due_at, resolved_at, satisfaction"
)

PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION report_stale_inserted() RETURNS trigger AS $$
BEGIN
    INSERT INTO report_stale (utc_day)
    SELECT DISTINCT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION report_stale_updated() RETURNS trigger AS $$
BEGIN
    INSERT INTO report_stale (utc_day)
    VALUES (to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
    IF to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        <> to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') THEN
        INSERT INTO report_stale (utc_day)
        VALUES (to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

PG_TRIGGERS = f"""
CREATE TRIGGER ticket_report_stale_insert AFTER INSERT ON ticket
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_stale_inserted();
CREATE TRIGGER ticket_report_stale_update AFTER UPDATE OF {WATCHED} ON ticket
    FOR EACH ROW EXECUTE FUNCTION report_stale_updated();
"""

SQLITE_TRIGGERS = (
    """CREATE TRIGGER ticket_report_stale_insert AFTER INSERT ON ticket
BEGIN
    INSERT INTO report_stale (utc_day) VALUES (substr(NEW.created_at, 1, 10));
END""",
    f"""CREATE TRIGGER ticket_report_stale_update AFTER UPDATE OF {WATCHED} ON ticket
BEGIN
    INSERT INTO report_stale (utc_day) VALUES (substr(OLD.created_at, 1, 10));
    INSERT INTO report_stale (utc_day) SELECT substr(NEW.created_at, 1, 10)
    WHERE substr(NEW.created_at, 1, 10) <> substr(OLD.created_at, 1, 10);
END""",
)


def upgrade() -> None:
    op.create_table(
        "report_day",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "tickets",
                "linked",
                "first_response_met",
                "first_response_late",
                "first_response_open",
                "resolution_met",
                "resolution_late",
                "resolution_open",
                "satisfaction_sum",
                "satisfaction_count",
            )
        ],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_day")),
    )
    op.create_index("ix_report_day_day", "report_day", ["day"])
    op.create_table(
        "report_day_state",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("first_response_minutes", sa.JSON(), nullable=False),
        sa.Column("resolution_minutes", sa.JSON(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_report_day_state")),
    )
    op.create_table(
        "report_stale",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("utc_day", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_stale")),
    )
    # The live part of a period's figures: clocks still running, and repeat repairs.
    for name, due, done in (
        ("ix_ticket_first_response_running", "first_response_due_at", "first_responded_at"),
        ("ix_ticket_resolution_running", "resolution_due_at", "resolved_at"),
    ):
        op.create_index(
            name,
            "ticket",
            [due, "created_at"],
            postgresql_where=sa.text(f"{done} IS NULL"),
            sqlite_where=sa.text(f"{done} IS NULL"),
        )
    op.create_index("ix_ticket_category_created", "ticket", ["category", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        op.execute(PG_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS ticket_report_stale_update ON ticket"
        if _pg()
        else "DROP TRIGGER IF EXISTS ticket_report_stale_update"
    )
    op.execute(
        "DROP TRIGGER IF EXISTS ticket_report_stale_insert ON ticket"
        if _pg()
        else "DROP TRIGGER IF EXISTS ticket_report_stale_insert"
    )
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS report_stale_updated()")
        op.execute("DROP FUNCTION IF EXISTS report_stale_inserted()")
    op.drop_index("ix_ticket_category_created", table_name="ticket")
    op.drop_index("ix_ticket_resolution_running", table_name="ticket")
    op.drop_index("ix_ticket_first_response_running", table_name="ticket")
    op.drop_table("report_stale")
    op.drop_table("report_day_state")
    op.drop_index("ix_report_day_day", table_name="report_day")
    op.drop_table("report_day")


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"
