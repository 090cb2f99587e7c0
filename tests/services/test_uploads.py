"""CSV imports from the web (services.uploads): a file is checked before anything is stored,
a worker imports it once however often its job runs, its progress is visible to other
connections while it runs, and a failure keeps the file so it can be tried again; lost jobs
are queued again by the sweep."""

from __future__ import annotations

import functools
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import Conversation, CsvImport, ImportState, Message, Role
from inbox.queue import get_queue
from inbox.services import csv_import, uploads
from inbox.services.accounts import get_or_create_team
from inbox.timeutil import utcnow
from tests import factories

LIMIT = 1_000_000


@pytest.fixture
def admin(make_user):
    return make_user(Role.ADMIN, name="Ada Admin")


def start(data: bytes, admin, **kwargs) -> CsvImport:
    upload = uploads.start_import(
        data,
        filename=kwargs.pop("filename", "history.csv"),
        team=kwargs.pop("team", None),
        user=admin,
        now=kwargs.pop("now", utcnow()),
        max_bytes=kwargs.pop("max_bytes", LIMIT),
    )
    db.session.commit()
    return upload


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def reload(upload: CsvImport) -> CsvImport:
    db.session.expire_all()
    return db.session.get(CsvImport, upload.id)


def test_an_upload_is_queued_then_imported_into_its_team_and_the_file_let_go(app, admin):
    team = get_or_create_team("Social care")
    queued_before = get_queue("default").count
    upload = start(factories.twcs_file(12), admin, team=team)
    assert upload.state is ImportState.QUEUED
    assert get_queue("default").count == queued_before + 1  # its job, sent after the commit

    done = uploads.run_import(upload.id, now=utcnow())

    assert done is not None and done.state is ImportState.DONE
    done = reload(upload)
    assert (done.rows, done.conversations_created, done.messages_created) == (24, 12, 24)
    assert (done.threads_done, done.threads_total, done.duplicates, done.skipped) == (12, 12, 0, 0)
    assert done.accounts == 1 and done.content is None and done.finished_at is not None
    assert count(Conversation) == 12 and count(Message) == 24
    assert set(db.session.scalars(select(Conversation.team_id))) == {team.id}


def test_progress_is_committed_as_the_batches_go_so_the_page_sees_it(app, admin, monkeypatch):
    monkeypatch.setattr(uploads, "PROGRESS_EVERY_SECONDS", 0)
    monkeypatch.setattr(
        uploads, "import_twcs", functools.partial(csv_import.import_twcs, batch_size=3)
    )
    real_batch = csv_import._import_batch

    def slow_batch(*args):
        # Batches as slow as a large file's, so that on PostgreSQL (where the calling thread
        # reports every 0.2 s while two threads import) a report falls between them.
        time.sleep(0.3)
        real_batch(*args)

    monkeypatch.setattr(csv_import, "_import_batch", slow_batch)
    seen = []
    reporter = uploads._reporter

    def watched(import_id):
        report = reporter(import_id)

        def spy(done, total):
            report(done, total)
            # What another connection (the web page's) reads at this moment.
            with db.engine.connect() as other:
                seen.append(
                    tuple(
                        other.execute(
                            select(CsvImport.threads_done, CsvImport.threads_total).where(
                                CsvImport.id == import_id
                            )
                        ).one()
                    )
                )

        return spy

    monkeypatch.setattr(uploads, "_reporter", watched)
    upload = start(factories.twcs_file(9), admin)
    uploads.run_import(upload.id, now=utcnow())
    assert seen[-1] == (9, 9)
    assert (3, 9) in seen or (6, 9) in seen  # at least one report from before the end
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "The file is empty."),
        (b"   \n", "The file is empty."),
        ("tweet_id,author_id\n1,é\n".encode("latin-1"), "not UTF-8"),
        (b"name,email\nAda,ada@example.com\n", "not a TWCS file: expected the TWCS header"),
        (",".join(csv_import.TWCS_COLUMNS).encode() + b"\n", "a header but no rows"),
        (
            factories.twcs_file(1).replace(b"+0000 2017", b"yesterday"),
            "not a TWCS file: line 2",
        ),
    ],
)
def test_a_file_that_is_not_a_twcs_export_is_refused_and_nothing_stored(app, admin, data, says):
    with pytest.raises(uploads.UploadError, match=says):
        start(data, admin)
    assert count(CsvImport) == 0


def test_a_file_over_the_limit_is_refused_with_both_sizes(app, admin):
    data = factories.twcs_file(400)
    limit = len(data) - 1
    with pytest.raises(
        uploads.UploadError,
        match=rf"The file is {len(data):,} bytes; the limit is {limit:,} bytes \(0\.0\d+ MB\)",
    ):
        start(data, admin, max_bytes=limit)
    assert count(CsvImport) == 0


def test_a_spreadsheet_s_utf8_bom_is_read_as_the_header(app, admin):
    upload = start(b"\xef\xbb\xbf" + factories.twcs_file(2), admin)
    assert uploads.run_import(upload.id, now=utcnow()).conversations_created == 2


def test_running_the_job_twice_imports_once(app, admin):
    upload = start(factories.twcs_file(5), admin)
    uploads.run_import(upload.id, now=utcnow())
    assert uploads.run_import(upload.id, now=utcnow()) is None
    assert count(Conversation) == 5 and reload(upload).conversations_created == 5


def test_a_bad_row_past_the_checked_ones_fails_the_import_and_keeps_the_file(app, admin):
    rows = factories.twcs_file(uploads.CHECKED_ROWS).decode().splitlines()
    rows[-1] = rows[-1].replace("+0000 2017", "last week")  # line 2 × CHECKED_ROWS + 1
    upload = start(("\n".join(rows) + "\n").encode(), admin)

    assert uploads.run_import(upload.id, now=utcnow()).state is ImportState.FAILED

    failed = reload(upload)
    assert failed.error.startswith(
        f"The file could not be read: line {2 * uploads.CHECKED_ROWS + 1}:"
    )
    assert failed.content is not None and count(Conversation) == 0


def test_an_import_that_crashes_is_failed_and_a_retry_finishes_what_was_stored(
    app, admin, monkeypatch
):
    upload = start(factories.twcs_file(6), admin)
    real = csv_import.import_twcs

    def crash_after_half(tweets, **kwargs):
        real(tweets[:6], **kwargs)  # three threads stored, then the database goes away
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(uploads, "import_twcs", crash_after_half)
    with pytest.raises(ConnectionError):
        uploads.run_import(upload.id, now=utcnow())
    failed = reload(upload)
    assert failed.state is ImportState.FAILED
    assert failed.error == "The import stopped: ConnectionError."  # no server detail shown
    assert failed.content is not None and count(Conversation) == 3

    monkeypatch.setattr(uploads, "import_twcs", real)
    uploads.retry(failed, actor=admin, now=utcnow())
    db.session.commit()
    assert reload(upload).state is ImportState.QUEUED
    done = uploads.run_import(upload.id, now=utcnow())
    assert (done.conversations_created, done.duplicates) == (3, 6)  # the stored half skipped
    assert (done.threads_done, done.threads_total, done.rows) == (6, 6, 12)  # this run's own
    assert count(Conversation) == 6


def test_only_a_failed_import_can_be_tried_again(app, admin):
    upload = start(factories.twcs_file(1), admin)
    with pytest.raises(uploads.UploadError, match="Only a failed import"):
        uploads.retry(upload, actor=admin, now=utcnow())


def test_a_failed_import_s_file_can_be_discarded_and_then_not_tried_again(app, admin):
    upload = start(factories.twcs_file(1), admin)
    upload.state = ImportState.FAILED
    db.session.commit()
    uploads.discard(upload, actor=admin, now=utcnow())
    db.session.commit()
    gone = reload(upload)
    assert gone.content is None and gone.has_file is False
    with pytest.raises(uploads.UploadError, match="whose file is kept"):
        uploads.retry(gone, actor=admin, now=utcnow())


def test_the_listing_does_not_read_the_files(app, admin):
    start(factories.twcs_file(50), admin)
    db.session.expire_all()
    (listed,) = uploads.recent()
    assert "content" not in listed.__dict__ and listed.has_file is True


def test_the_sweep_queues_again_lost_jobs_and_fails_imports_whose_worker_was_lost(app, admin):
    now = utcnow()
    long_ago = now - uploads.STALE_AFTER - timedelta(seconds=1)
    lost = start(factories.twcs_file(1), admin, now=long_ago)  # Redis was down at the upload
    died = start(factories.twcs_file(1), admin, now=long_ago)
    died.state = ImportState.RUNNING  # its worker was killed mid-import
    busy = start(factories.twcs_file(1), admin, now=long_ago)
    busy.state, busy.progress_at = ImportState.RUNNING, now  # reported just now
    start(factories.twcs_file(1), admin, now=now)  # queued just now
    finished = start(factories.twcs_file(1), admin, now=long_ago)
    uploads.run_import(finished.id, now=long_ago)
    db.session.commit()
    queued_before = get_queue("default").count

    assert uploads.sweep_stale(now=now) == 2
    db.session.commit()

    assert get_queue("default").count == queued_before + 1  # the lost job, once more
    assert reload(lost).state is ImportState.QUEUED and reload(lost).progress_at == now
    failed = reload(died)
    assert failed.state is ImportState.FAILED and failed.has_file
    assert failed.error.startswith("The worker stopped during the import")
    assert reload(busy).state is ImportState.RUNNING
    assert reload(finished).state is ImportState.DONE
    uploads.retry(failed, actor=admin, now=now)
    assert uploads.run_import(died.id, now=now).state is ImportState.DONE


def test_only_the_last_part_of_a_sent_path_is_kept_as_the_file_s_name(app, admin):
    assert (
        start(factories.twcs_file(1), admin, filename="C:\\Users\\ada\\h.csv").filename == "h.csv"
    )
    assert start(factories.twcs_file(1), admin, filename="../../etc/x.csv").filename == "x.csv"
    assert start(factories.twcs_file(1), admin, filename="").filename == "upload.csv"
