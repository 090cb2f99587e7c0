"""reports: counted business seconds on stopped SLA clocks; report e-mail subscriptions

Revision ID: 0006_reports
Revises: 0005_routing
Create Date: 2026-11-26 03:43:50.590283

"""

import json

import sqlalchemy as sa
from alembic import op

import inbox.models.base  # noqa: F401  (UTCDateTime column type)

# revision identifiers, used by Alembic.
revision = "0006_reports"
down_revision = "0005_routing"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "frequency",
            sa.Enum("daily", "weekly", name="frequency", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("last_period", sa.String(length=16), nullable=True),
        sa.Column("created_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "frequency"),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counted_seconds", sa.Integer(), nullable=True))
    # Backfill stopped clocks from their last met/stop event, which recorded the counted time.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT e.clock_id, e.detail FROM sla_clock_events e"
            " JOIN sla_clocks c ON c.id = e.clock_id"
            " WHERE c.stopped_at IS NOT NULL AND e.kind IN ('met', 'stop')"
            " ORDER BY e.clock_id, e.at, e.id"
        )
    ).all()
    counted = {}
    for clock_id, detail in rows:
        detail = json.loads(detail) if isinstance(detail, str) else detail or {}
        if "counted_seconds" in detail:
            counted[clock_id] = int(detail["counted_seconds"])
    for clock_id, seconds in counted.items():
        bind.execute(
            sa.text("UPDATE sla_clocks SET counted_seconds = :s WHERE id = :id"),
            {"s": seconds, "id": clock_id},
        )


def downgrade():
    op.drop_table("report_subscriptions")
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_column("counted_seconds")
