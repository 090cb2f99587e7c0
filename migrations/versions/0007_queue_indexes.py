"""queue indexes: the queue views' sort orders and get-next's order, partial per view group,
the generated priority_rank column get-next sorts on, and (PostgreSQL) joint statistics of
the filterable columns

Revision ID: 0007_queue_indexes
Revises: 0006_reports
Create Date: 2026-12-01 07:30:00.000000

The expressions are those of inbox.models.conversations (sla_order_key, in_values,
PRIORITY_RANK_SQL), written out here so this migration does not change if the models do later.
On PostgreSQL adding the stored generated column rewrites the conversations table.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import inbox.models.base

# revision identifiers, used by Alembic.
revision = "0007_queue_indexes"
down_revision = "0006_reports"
branch_labels = None
depends_on = None

NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)
OPEN = ("new", "open", "pending", "snoozed")
DONE = ("resolved", "closed")
CLAIMABLE = ("new", "open")
# The planner's joint statistics of the filterable columns (see the model).
FILTER_STATISTICS = (
    "CREATE STATISTICS conversations_filters (mcv)"
    " ON team_id, kind, is_public, priority, status, is_spam FROM conversations"
)
PRIORITY_RANK = (
    "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
)


def _status_in(values):
    return sa.column("status", sa.String()).in_(values)


def _where(clause):
    return {"postgresql_where": clause, "sqlite_where": clause}


def _no_deadline(dialect):
    if dialect == "postgresql":
        return sa.text("'9999-12-31 00:00:00+00'::timestamptz")
    return sa.literal(NO_DEADLINE, inbox.models.base.UTCDateTime())


def _indexes(dialect):
    not_spam = sa.column("is_spam", sa.Boolean()).is_(False)
    due = sa.column("sla_due_at", inbox.models.base.UTCDateTime())
    sla_key = sa.func.coalesce(due, _no_deadline(dialect))
    open_ = _status_in(OPEN) & not_spam
    return {
        "ix_conversations_open_sla": ([sla_key, "id"], open_),
        "ix_conversations_mine_sla": (["assignee_id", sla_key, "id"], open_),
        "ix_conversations_done_sla": ([sla_key, "id"], _status_in(DONE) & not_spam),
        "ix_conversations_spam_sla": (
            [sla_key, "id"],
            sa.column("is_spam", sa.Boolean()).is_(True),
        ),
        "ix_conversations_open_waiting": (
            [sa.func.coalesce(sa.column("last_inbound_at"), sa.column("created_at")), "id"],
            open_,
        ),
        "ix_conversations_open_activity": (
            [sa.func.coalesce(sa.column("last_message_at"), sa.column("created_at")), "id"],
            open_,
        ),
        "ix_conversations_claim": (
            [sla_key, "priority_rank", "first_inbound_at", "id"],
            _status_in(CLAIMABLE) & sa.column("assignee_id").is_(None) & not_spam,
        ),
    }


def upgrade():
    dialect = op.get_bind().dialect.name
    # SQLite cannot add a stored generated column to a table: it copies the table instead.
    with op.batch_alter_table(
        "conversations", recreate="always" if dialect == "sqlite" else "auto"
    ) as batch_op:
        batch_op.add_column(
            sa.Column(
                "priority_rank",
                sa.Integer(),
                sa.Computed(PRIORITY_RANK, persisted=True),
                nullable=False,
            )
        )
    for name, (columns, where) in _indexes(dialect).items():
        op.create_index(name, "conversations", columns, unique=False, **_where(where))
    if dialect == "postgresql":
        op.execute(FILTER_STATISTICS)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP STATISTICS conversations_filters")
    for name in _indexes(dialect):
        op.drop_index(name, table_name="conversations")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("priority_rank")
