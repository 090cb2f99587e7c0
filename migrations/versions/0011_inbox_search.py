"""inbox search: pg_trgm GIN indexes for the queue's text search (message text, contact
names and handles), PostgreSQL only; an index of the open items' filterable columns

Revision ID: 0011_inbox_search
Revises: 0010_helpdesk
Create Date: 2026-12-01 10:40:00.000000

SQLite gets no trigram index (it has none) and keeps scanning. On PostgreSQL, building the
messages index reads the whole table and blocks writes to it meanwhile (about a minute per
5M messages on the project's VM); the extension stays on downgrade (other objects may use it).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011_inbox_search"
down_revision = "0010_helpdesk"
branch_labels = None
depends_on = None

# (index, table, column), as inbox.models declares them (models.base.trigram_index).
TRIGRAM_INDEXES = [
    ("ix_messages_text_trgm", "messages", "text"),
    ("ix_contacts_display_name_trgm", "contacts", "display_name"),
    ("ix_contact_identities_handle_trgm", "contact_identities", "handle"),
    ("ix_contact_identities_display_name_trgm", "contact_identities", "display_name"),
]

# The filters index, partial over the open items like the queue's (inbox.models.conversations).
FILTER_COLUMNS = ["team_id", "kind", "priority", "is_public", "channel_account_id"]
OPEN = ("new", "open", "pending", "snoozed")


def upgrade():
    not_spam = sa.column("is_spam", sa.Boolean()).is_(False)
    open_ = sa.column("status", sa.String()).in_(OPEN) & not_spam
    op.create_index(
        "ix_conversations_open_filters",
        "conversations",
        FILTER_COLUMNS,
        unique=False,
        postgresql_where=open_,
        sqlite_where=open_,
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAM_INDEXES:
        op.create_index(
            name,
            table,
            [column],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
            # A short pending list of new entries, which every search reads (see the model).
            postgresql_with={"gin_pending_list_limit": 512},
        )


def downgrade():
    op.drop_index("ix_conversations_open_filters", table_name="conversations")
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _ in TRIGRAM_INDEXES:
        op.drop_index(name, table_name=table)
