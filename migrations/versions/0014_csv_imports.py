"""csv imports from the web: the uploaded file, its progress and its outcome

Revision ID: 0014_csv_imports
Revises: 0013_inbox_filters
Create Date: 2026-12-04 01:45:00.000000

"""

import sqlalchemy as sa
from alembic import op

import inbox.models.base  # noqa: F401  (UTCDateTime column type)

# revision identifiers, used by Alembic.
revision = "0014_csv_imports"
down_revision = "0013_inbox_filters"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "csv_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                name="importstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("progress_at", inbox.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", inbox.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", inbox.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("threads_done", sa.Integer(), nullable=False),
        sa.Column("threads_total", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("conversations_created", sa.Integer(), nullable=True),
        sa.Column("messages_created", sa.Integer(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
        sa.Column("accounts", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_csv_imports_state_progress", "csv_imports", ["state", "progress_at"], unique=False
    )


def downgrade():
    op.drop_index("ix_csv_imports_state_progress", table_name="csv_imports")
    op.drop_table("csv_imports")
