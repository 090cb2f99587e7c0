"""The CSV import's batches: each committed whole with its clocks, side by side on PostgreSQL
(`IMPORT_THREADS`), one after the other on SQLite; a failed batch loses nothing a re-run does
not restore."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import ContactIdentity, Conversation, Message, SlaClock, SlaPolicy
from inbox.services import csv_import
from inbox.services.csv_import import TWCS_COLUMNS, Tweet, import_twcs, read_twcs
from inbox.timeutil import utcnow

START = datetime(2017, 10, 31, 22, 0, tzinfo=UTC)


def customer_threads(threads: int, customers: int) -> list[Tweet]:
    """`threads` threads of a customer tweet and a brand reply; customers take turns, so each
    one has threads in many batches."""
    tweets = []
    for i in range(threads):
        asked = START + timedelta(minutes=i)
        tweets.append(Tweet(f"{2 * i + 1}", f"{800000 + i % customers}", True, asked, "hi", None))
        tweets.append(
            Tweet(
                f"{2 * i + 2}",
                "AcmeHelp",
                False,
                asked + timedelta(minutes=5),
                "ok",
                f"{2 * i + 1}",
            )
        )
    return tweets


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def clocked() -> int:
    """Conversations with SLA clocks."""
    return db.session.scalar(select(func.count(SlaClock.conversation_id.distinct())))


@pytest.fixture
def always_on(app):
    db.session.add(
        SlaPolicy(position=1, name="24/7", first_response_seconds=3600, business_hours=False)
    )
    db.session.commit()


def test_batches_sharing_customers_create_each_contact_once(app, always_on):
    # 30 threads of 3 customers in batches of 2: on PostgreSQL two batches are written at the
    # same time, and both would create the same customer if contacts were created per batch.
    result = import_twcs(customer_threads(30, 3), now=utcnow(), batch_size=2)
    assert (result.conversations_created, result.messages_created) == (30, 60)
    assert count(ContactIdentity) == 3
    assert count(Conversation) == 30 and count(Message) == 60
    assert clocked() == 30


def test_a_failed_batch_is_stored_not_at_all_and_a_rerun_completes_the_import(
    app, always_on, monkeypatch
):
    tweets = customer_threads(40, 7)
    real_run_clocks, calls = csv_import._run_clocks, []

    def third_batch_fails(batch, *, now):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("clocks failed")
        real_run_clocks(batch, now=now)

    monkeypatch.setattr(csv_import, "_run_clocks", third_batch_fails)
    with pytest.raises(RuntimeError, match="clocks failed"):
        import_twcs(tweets, now=utcnow(), batch_size=4)
    # The other batches stop after the one they were in: whole batches, each with its clocks.
    stored = count(Conversation)
    assert 2 * 4 <= stored <= 40 - 4 and stored % 4 == 0
    assert count(Message) == 2 * stored
    assert clocked() == stored

    monkeypatch.setattr(csv_import, "_run_clocks", real_run_clocks)
    again = import_twcs(tweets, now=utcnow(), batch_size=4)
    assert again.conversations_created == 40 - stored
    assert again.duplicates == 2 * stored
    assert (count(Conversation), count(Message), clocked()) == (40, 80, 40)
    assert count(ContactIdentity) == 7


def test_imported_tweet_text_has_the_characters_the_csv_holds_as_html_entities():
    csv_text = (
        ",".join(TWCS_COLUMNS)
        + "\n"
        + (
            "1,115712,True,Tue Oct 31 22:10:47 +0000 2017,"
            '"@sprintcare bill &amp; plan wrong &gt;:( &lt;- fix",,\n'
        )
    )
    [tweet] = read_twcs(io.StringIO(csv_text))
    assert tweet.text == "@sprintcare bill & plan wrong >:( <- fix"


def test_an_import_keeps_the_name_an_admin_gave_a_connected_account(app, always_on):
    from inbox.models import ChannelAccount, Platform
    from inbox.services.channels import add_channel

    add_channel(Platform.X, "AcmeHelp", name="Acme care (main)")
    db.session.commit()
    import_twcs(customer_threads(2, 1), now=utcnow())
    db.session.expire_all()
    (account,) = db.session.scalars(select(ChannelAccount)).all()
    assert account.name == "Acme care (main)"
    assert count(Conversation) == 2
