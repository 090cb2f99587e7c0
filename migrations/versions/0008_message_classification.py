"""classification: language and sentiment of customer messages

Revision ID: 0008_message_classification
Revises: 0007_queue_indexes
Create Date: 2026-12-01 08:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008_message_classification"
down_revision = "0007_queue_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sentiment", sa.Double(), nullable=True))


def downgrade():
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sentiment")
        batch.drop_column("language")
