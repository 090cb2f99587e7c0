"""inbox filters: the joint statistics of the filterable columns also cover the assignee (the
visibility rule's other column), PostgreSQL only

Revision ID: 0013_inbox_filters
Revises: 0012_sla_speed
Create Date: 2026-12-01 17:00:00.000000

The statistics object is redefined (a statistics object's columns cannot be altered) and the
table analysed, so the planner has the new statistics at once instead of at the next
autovacuum analyse (ANALYZE reads a sample of the table, seconds for 1M conversations).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_inbox_filters"
down_revision = "0012_sla_speed"
branch_labels = None
depends_on = None

# As inbox.models.conversations declares it (FILTER_STATISTICS), and as 0007 created it.
FILTER_STATISTICS = (
    "CREATE STATISTICS conversations_filters (mcv)"
    " ON team_id, assignee_id, kind, is_public, priority, status, is_spam FROM conversations"
)
PREVIOUS_FILTER_STATISTICS = (
    "CREATE STATISTICS conversations_filters (mcv)"
    " ON team_id, kind, is_public, priority, status, is_spam FROM conversations"
)


def _redefine(statement: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS conversations_filters")
    op.execute(statement)
    op.execute("ANALYZE conversations")


def upgrade():
    _redefine(FILTER_STATISTICS)


def downgrade():
    _redefine(PREVIOUS_FILTER_STATISTICS)
