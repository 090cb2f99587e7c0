"""CSV files uploaded on the admin's Import page: checked and stored at once, imported by a
worker (`csv_import.import_twcs`) that keeps the import's progress on its row, tried again (or
its file discarded) by an admin when one fails, queued again by the sweep when its job was
lost and failed by it when its worker was.

Imports: models, extensions.db, queue, services.csv_import, services.audit, timeutil.
"""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta

from sqlalchemy import select, update

from inbox.extensions import db
from inbox.models import CsvImport, ImportState, Team, User
from inbox.queue import enqueue_after_commit
from inbox.services.audit import record_audit
from inbox.services.csv_import import ImportFormatError, ImportResult, import_twcs, read_twcs
from inbox.timeutil import utcnow

# An upload is checked on its first rows while the admin waits; the worker reads the rest.
CHECKED_ROWS = 200
# How often a running import writes its progress (the page polls about once a second).
PROGRESS_EVERY_SECONDS = 0.5
# A queued import no job took for this long lost its job (Redis was down at the upload): the
# sweep queues it again. A running one that has not reported for this long lost its worker
# (killed, out of memory): the sweep fails it, for an admin to try again, rather than start a
# file that may kill every worker anew.
STALE_AFTER = timedelta(minutes=10)
# RQ stops a job after 3 minutes by default; a file of hundreds of thousands of rows takes
# longer than that.
JOB_TIMEOUT_SECONDS = 4 * 3600
RECENT = 20


WORKER_LOST = "The worker stopped during the import (it was restarted, or ran out of memory)."
NOT_UTF8 = "The file is not UTF-8 text; save it as “CSV UTF-8” and upload it again."


class UploadError(ValueError):
    """The upload is refused before anything is stored; the message is for the admin."""


def start_import(
    data: bytes, *, filename: str, team: Team | None, user: User, now: datetime, max_bytes: int
) -> CsvImport:
    """Check an uploaded TWCS file (size, encoding, header, its first rows) and store it with
    a job to import it, enqueued when the caller commits. `filename` is what the browser sent;
    only its last part is kept. Raises UploadError."""
    if not data or data.isspace():
        raise UploadError("The file is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes"
            f" ({max_bytes / 1e6:g} MB)."
        )
    try:
        tweets = read_twcs(_text(data), limit=CHECKED_ROWS)
    except ImportFormatError as exc:
        raise UploadError(f"This is not a TWCS file: {exc}.") from None
    except UnicodeDecodeError:
        raise UploadError(NOT_UTF8) from None
    if not tweets:
        raise UploadError("The file has a header but no rows.")
    upload = CsvImport(
        # A browser may send a path (old Internet Explorer did).
        filename=filename.replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload.csv",
        size=len(data),
        content=data,
        team=team,
        created_by=user,
        created_at=now,
        progress_at=now,
    )
    db.session.add(upload)
    db.session.flush()
    record_audit(
        "import.started",
        upload,
        actor=user,
        after={"filename": upload.filename, "bytes": upload.size},
        now=now,
    )
    _enqueue(upload, now=now)
    return upload


def _text(data: bytes) -> io.TextIOWrapper:
    """The file as text, decoded as it is read (a whole decoded copy of a large file would
    take several times its size), a spreadsheet's byte-order mark skipped."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def _enqueue(upload: CsvImport, *, now: datetime) -> None:
    upload.progress_at = now
    enqueue_after_commit(
        db.session, "inbox.jobs.run_csv_import", upload.id, job_timeout=JOB_TIMEOUT_SECONDS
    )


def run_import(import_id: int, *, now: datetime) -> CsvImport | None:
    """Import a stored upload, writing its progress as it goes; commits. None when another
    job has it (or had it: running twice imports once). A file that turns out to be bad
    further down marks the import failed with the reason; any other failure does too, and is
    raised (the worker logs it)."""
    taken = db.session.execute(
        update(CsvImport)
        .where(CsvImport.id == import_id, CsvImport.state == ImportState.QUEUED)
        # A retry starts from nothing: what the failed run stored is counted as duplicates.
        .values(
            state=ImportState.RUNNING,
            started_at=now,
            progress_at=now,
            error=None,
            threads_done=0,
            threads_total=None,
            rows=None,
        )
    )
    db.session.commit()
    if taken.rowcount != 1:
        return None
    upload = db.session.get(CsvImport, import_id)
    assert upload is not None and upload.content is not None
    try:
        tweets = read_twcs(_text(upload.content))
    except ImportFormatError as exc:
        return _give_up(upload, f"The file could not be read: {exc}.")
    except UnicodeDecodeError:
        return _give_up(upload, NOT_UTF8)
    try:
        upload.rows, upload.progress_at = len(tweets), utcnow()
        db.session.commit()
        result = import_twcs(tweets, now=now, team=upload.team, progress=_reporter(import_id))
    except Exception as exc:
        db.session.rollback()
        # What was committed batch by batch stays; trying again skips it.
        _give_up(db.session.get(CsvImport, import_id), f"The import stopped: {type(exc).__name__}.")
        raise
    return _finish(upload, result)


def _reporter(import_id: int):
    """A (done, total) progress callback that writes at most every PROGRESS_EVERY_SECONDS,
    and always the end. It runs between the import's batches, each committed already."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        moment = time.monotonic()
        if done < total and moment - last[0] < PROGRESS_EVERY_SECONDS:
            return
        last[0] = moment
        db.session.execute(
            update(CsvImport)
            .where(CsvImport.id == import_id)
            .values(threads_done=done, threads_total=total, progress_at=utcnow())
        )
        db.session.commit()

    return report


def _finish(upload: CsvImport, result: ImportResult) -> CsvImport:
    upload.state = ImportState.DONE
    upload.finished_at = upload.progress_at = utcnow()
    upload.conversations_created = result.conversations_created
    upload.messages_created = result.messages_created
    upload.duplicates = result.duplicates
    upload.skipped = result.skipped
    upload.accounts = len(result.accounts)
    if upload.threads_total is None:  # nothing to import: no progress was reported
        upload.threads_done = upload.threads_total = 0
    upload.content = None  # the conversations hold it now
    db.session.commit()
    return upload


def _fail(upload: CsvImport, reason: str, *, now: datetime) -> None:
    """Mark `upload` failed with `reason` (the file stays, for a retry); the caller commits."""
    upload.state = ImportState.FAILED
    upload.finished_at = upload.progress_at = now
    upload.error = reason


def _give_up(upload: CsvImport, reason: str) -> CsvImport:
    """`_fail` from within the job, committed at once."""
    _fail(upload, reason, now=utcnow())
    db.session.commit()
    return upload


def retry(upload: CsvImport, *, actor: User, now: datetime) -> None:
    """Queue a failed import again (what it stored already is skipped)."""
    if upload.state is not ImportState.FAILED or not upload.has_file:
        raise UploadError("Only a failed import whose file is kept can be tried again.")
    upload.state = ImportState.QUEUED
    upload.error = None
    upload.finished_at = None
    record_audit("import.retried", upload, actor=actor, now=now)
    _enqueue(upload, now=now)


def discard(upload: CsvImport, *, actor: User, now: datetime) -> None:
    """Delete a failed import's file (customer content an admin does not want kept)."""
    if upload.state is not ImportState.FAILED or not upload.has_file:
        raise UploadError("Only a failed import's file can be discarded.")
    upload.content = None
    record_audit("import.discarded", upload, actor=actor, now=now)


def sweep_stale(*, now: datetime) -> int:
    """Queue again the imports whose job was lost, and fail those whose worker was lost (see
    STALE_AFTER); returns how many it changed."""
    stale = db.session.scalars(
        select(CsvImport).where(
            CsvImport.state.in_([ImportState.QUEUED, ImportState.RUNNING]),
            CsvImport.progress_at < now - STALE_AFTER,
        )
    ).all()
    for upload in stale:
        if upload.state is ImportState.QUEUED:
            _enqueue(upload, now=now)
        else:
            _fail(upload, WORKER_LOST, now=now)
    return len(stale)


def recent() -> list[CsvImport]:
    """The latest imports, newest first (without their files)."""
    return list(
        db.session.scalars(select(CsvImport).order_by(CsvImport.id.desc()).limit(RECENT)).all()
    )
