"""report indexes: SLA clocks by start, covering what the reports read (PostgreSQL)

Revision ID: 0009_report_indexes
Revises: 0008_message_classification
Create Date: 2026-12-01 07:45:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_report_indexes"
down_revision = "0008_message_classification"
branch_labels = None
depends_on = None

# The columns services.reports reads from a clock; on PostgreSQL they ride in the index so the
# date range is an index-only scan. SQLite ignores postgresql_include (a plain index).
INCLUDED = [
    "conversation_id",
    "metric",
    "stop_reason",
    "target_seconds",
    "stopped_at",
    "breached_at",
    "counted_seconds",
]


def upgrade():
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_clocks_started", ["started_at"], unique=False, postgresql_include=INCLUDED
        )


def downgrade():
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_clocks_started")
