"""helpdesk hand-off: team webhook endpoints, case deliveries with their attempts, case status

Revision ID: 0010_helpdesk
Revises: 0009_report_indexes
Create Date: 2026-12-01 08:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

import inbox.models.base  # noqa: F401  (UTCDateTime column type)

# revision identifiers, used by Alembic.
revision = "0010_helpdesk"
down_revision = "0009_report_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "helpdesk_endpoints",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "helpdesk_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "retrying",
                "delivered",
                "failed",
                name="helpdeskdeliverystate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", inbox.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_helpdesk_deliveries_conversation",
        "helpdesk_deliveries",
        ["conversation_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_helpdesk_deliveries_state_queued",
        "helpdesk_deliveries",
        ["state", "queued_at"],
        unique=False,
    )
    op.create_table(
        "helpdesk_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["helpdesk_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_helpdesk_attempts_delivery_id"), "helpdesk_attempts", ["delivery_id"], unique=False
    )
    op.create_table(
        "helpdesk_cases",
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id"),
    )


def downgrade():
    op.drop_table("helpdesk_cases")
    op.drop_index(op.f("ix_helpdesk_attempts_delivery_id"), table_name="helpdesk_attempts")
    op.drop_table("helpdesk_attempts")
    op.drop_index("ix_helpdesk_deliveries_state_queued", table_name="helpdesk_deliveries")
    op.drop_index("ix_helpdesk_deliveries_conversation", table_name="helpdesk_deliveries")
    op.drop_table("helpdesk_deliveries")
    op.drop_table("helpdesk_endpoints")
