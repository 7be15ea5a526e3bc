"""building-wide incidents and notices: incident, its buildings, contacts and notices; a ticket's
incident; a resident's opt-out of non-urgent notices

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("starts_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expected_end_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_index("ix_incident_status", "incident", ["status"])
    op.create_table(
        "incident_building",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_building_incident_id_incident")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"], ["building.id"], name=op.f("fk_incident_building_building_id_building")
        ),
        sa.PrimaryKeyConstraint("incident_id", "building_id", name=op.f("pk_incident_building")),
    )
    op.create_index(op.f("ix_incident_building_building_id"), "incident_building", ["building_id"])
    op.create_table(
        "incident_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("external_id", sa.String(300), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_contact_incident_id_incident")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_incident_contact_resident_id_resident")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_incident_contact_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_contact")),
        sa.UniqueConstraint(
            "incident_id",
            "channel",
            "external_id",
            name=op.f("uq_incident_contact_incident_id_channel_external_id"),
        ),
    )
    op.create_index(op.f("ix_incident_contact_incident_id"), "incident_contact", ["incident_id"])
    op.create_table(
        "incident_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("to", sa.String(254), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(10), nullable=False),
        sa.Column("outgoing_message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_notice_incident_id_incident")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_incident_notice_resident_id_resident")
        ),
        sa.ForeignKeyConstraint(
            ["outgoing_message_id"],
            ["outgoing_message.id"],
            name=op.f("fk_incident_notice_outgoing_message_id_outgoing_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notice")),
        sa.UniqueConstraint(
            "incident_id",
            "step",
            "channel",
            "to",
            name=op.f("uq_incident_notice_incident_id_step_channel_to"),
        ),
    )
    op.create_index(op.f("ix_incident_notice_incident_id"), "incident_notice", ["incident_id"])
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ticket_incident_id"), ["incident_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_incident_id_incident"), "incident", ["incident_id"], ["id"]
        )
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notices_opt_out", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.drop_column("notices_opt_out")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ticket_incident_id_incident"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_ticket_incident_id"))
        batch_op.drop_column("incident_id")
    op.drop_table("incident_notice")
    op.drop_table("incident_contact")
    op.drop_table("incident_building")
    op.drop_table("incident")
