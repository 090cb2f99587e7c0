"""CSV imports started from the web: the uploaded file, kept until a worker has imported it,
the import's progress as the worker reports it, and its outcome.

Imports: extensions, models.base, sibling model modules.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import Team, User
from inbox.models.base import UTCDateTime, enum_column
from inbox.timeutil import utcnow


class ImportState(enum.StrEnum):
    QUEUED = "queued"  # stored, waiting for a worker
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the file is kept: an admin can try again


class CsvImport(Base):
    """One uploaded file and what importing it did. The file lives in the database, not on a
    web server's disk, so any worker on any machine can import it."""

    __tablename__ = "csv_imports"
    __table_args__ = (
        # The sweep looks for imports whose job was lost (Redis down at the upload, a worker
        # that died mid-import).
        Index("ix_csv_imports_state_progress", "state", "progress_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    # Cleared once imported (the conversations hold what it said) or discarded. Deferred: up to
    # INBOX_MAX_IMPORT_BYTES, read only by the job that imports it.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[ImportState] = enum_column(ImportState, default=ImportState.QUEUED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a job was last enqueued or the worker last reported: a queued or running import
    # that has not moved for long lost its job.
    progress_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Progress: threads (future conversations) imported of those the file holds.
    threads_done: Mapped[int] = mapped_column(default=0)
    threads_total: Mapped[int | None]
    rows: Mapped[int | None]
    conversations_created: Mapped[int | None]
    messages_created: Mapped[int | None]
    duplicates: Mapped[int | None]
    skipped: Mapped[int | None]
    accounts: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)

    team: Mapped[Team | None] = relationship()
    created_by: Mapped[User | None] = relationship()

    # Whether the file is still stored (it can be tried again), without reading it.
    has_file: Mapped[bool] = column_property(content.isnot(None))
