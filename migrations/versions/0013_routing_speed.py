"""routing speed: the routing rules' version token (compiled rules are cached per process)

Revision ID: 0013_routing_speed
Revises: 0010_helpdesk
Create Date: 2026-12-01 11:00:00

"""

import uuid

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_routing_speed"
down_revision = "0010_helpdesk"
branch_labels = None
depends_on = None


def upgrade():
    version = op.create_table(
        "routing_rules_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(version, [{"id": 1, "token": uuid.uuid4().hex}])


def downgrade():
    op.drop_table("routing_rules_version")
