"""SLA speed: version tokens of cached configuration (the per-process policy cache), and room
on the pages of conversations and sla_clocks for HOT updates by the sweep

Revision ID: 0012_sla_speed
Revises: 0011_inbox_search
Create Date: 2026-12-01 11:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_sla_speed"
down_revision = "0011_inbox_search"
branch_labels = None
depends_on = None

# Only pages written from now on keep the room; existing ones get it as rows move (or at a
# VACUUM FULL / CLUSTER, which this migration does not run: it would lock the tables).
FILLFACTOR_TABLES = ("conversations", "sla_clocks")


def upgrade():
    op.create_table(
        "config_versions",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in FILLFACTOR_TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 85)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in FILLFACTOR_TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.drop_table("config_versions")
