"""The operator commands of DESIGN §9: create-user, add-channel, import-csv, seed-demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import (
    ChannelAccount,
    ContactIdentity,
    Conversation,
    Direction,
    Message,
    Role,
    Status,
    User,
)
from tests.conftest import ROOT, SHARED_DATA

SMALL_TWCS = ROOT / "tests" / "fixtures" / "csv" / "twcs_small.csv"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_create_user_with_team_and_printed_api_token(runner, client):
    result = runner.invoke(
        args=[
            "create-user",
            "Sam@Example.com",
            "--name",
            "Sam",
            "--role",
            "supervisor",
            "--team",
            "Billing",
            "--password",
            "s3cret-pass",
            "--api-token",
        ]
    )
    assert result.exit_code == 0, result.output
    token = result.output.split("api token: ")[1].strip()
    user = db.session.scalar(select(User).where(User.email == "sam@example.com"))
    assert user.role is Role.SUPERVISOR
    assert [t.name for t in user.teams] == ["Billing"]
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json["email"] == "sam@example.com"
    assert "password:" not in result.output  # given, so not echoed


def test_create_user_generates_and_prints_a_password_when_none_given(runner, client):
    result = runner.invoke(args=["create-user", "a@example.com", "--name", "A"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ")[1].split()[0]
    response = client.post("/login", data={"email": "a@example.com", "password": password})
    assert response.status_code == 302


def test_create_user_refuses_a_duplicate_email_clearly(runner):
    runner.invoke(args=["create-user", "a@example.com", "--name", "A"])
    result = runner.invoke(args=["create-user", "A@example.com", "--name", "A again"])
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert count(User) == 1


def test_add_channel_is_idempotent(runner):
    args = [
        "add-channel",
        "--platform",
        "whatsapp",
        "--account-id",
        "106540352242922",
        "--name",
        "Support line",
    ]
    first = runner.invoke(args=args)
    second = runner.invoke(args=[*args[:-1], "Support line (renamed)"])
    assert first.exit_code == 0 and "created" in first.output
    assert second.exit_code == 0 and "exists" in second.output
    account = db.session.scalar(select(ChannelAccount))
    assert count(ChannelAccount) == 1
    assert account.name == "Support line (renamed)"


def test_import_twcs_threads_replies_and_maps_brands_and_customers(runner):
    result = runner.invoke(args=["import-csv", str(SMALL_TWCS), "--format", "twcs"])
    assert result.exit_code == 0, result.output
    accounts = {a.external_account_id for a in db.session.scalars(select(ChannelAccount))}
    assert accounts == {"AcmeHelp", "OtherBrand"}
    thread = db.session.scalar(select(Conversation).where(Conversation.thread_key == "tweet:3"))
    texts = [(m.external_id, m.direction) for m in thread.messages]
    # Ordered by time although the file lists the reply first.
    assert texts == [
        ("3", Direction.INBOUND),
        ("1", Direction.OUTBOUND),
        ("2", Direction.INBOUND),
        ("4", Direction.OUTBOUND),
    ]
    assert thread.contact.identities[0].external_user_id == "900001"
    assert thread.first_inbound_at.isoformat() == "2017-10-31T22:02:11+00:00"
    assert thread.first_response_at.isoformat() == "2017-10-31T22:10:47+00:00"
    assert thread.status is Status.RESOLVED  # the brand spoke last
    assert "\n" in thread.messages[2].text  # multi-line tweet kept whole
    waiting = db.session.scalar(select(Conversation).where(Conversation.thread_key == "tweet:5"))
    assert waiting.status is Status.OPEN and waiting.first_response_at is None
    # Tweet 6 mentions OtherBrand (a known brand): attributed to it. Tweet 7 is a brand reply
    # to a missing tweet and 8 names no brand: both skipped and reported.
    assert "2 skipped" in result.output


def test_import_twcs_twice_adds_nothing(runner):
    runner.invoke(args=["import-csv", str(SMALL_TWCS)])
    before = (count(Conversation), count(Message), count(ContactIdentity))
    result = runner.invoke(args=["import-csv", str(SMALL_TWCS)])
    assert result.exit_code == 0
    assert "0 messages" in result.output and "6 already stored" in result.output
    assert (count(Conversation), count(Message), count(ContactIdentity)) == before


def test_import_refuses_a_file_in_another_format(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,hello\n")
    result = runner.invoke(args=["import-csv", str(bad)])
    assert result.exit_code != 0
    assert "expected the TWCS header" in result.output
    assert count(Message) == 0


def test_import_names_the_line_of_a_malformed_row(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(SMALL_TWCS.read_text().replace("Tue Oct 31 22:15:02", "yesterday", 1))
    result = runner.invoke(args=["import-csv", str(bad)])
    assert result.exit_code != 0
    assert "line 4" in result.output


@pytest.mark.skipif(
    not (SHARED_DATA / "twcs_sample.csv").exists(),
    reason="../shared/data/twcs_sample.csv is not here (licensed test material; CI has it)",
)
def test_import_of_the_real_twcs_sample_keeps_every_attributed_tweet(runner):
    path: Path = SHARED_DATA / "twcs_sample.csv"
    result = runner.invoke(args=["import-csv", str(path)])
    assert result.exit_code == 0, result.output
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    skipped = int(result.output.split(" skipped")[0].rsplit("; ", 1)[1])
    assert count(Message) + skipped == len(rows)
    brands = {r["author_id"] for r in rows if r["inbound"] == "False"}
    assert {a.external_account_id for a in db.session.scalars(select(ChannelAccount))} <= brands


def test_seed_demo_twice_does_not_duplicate(runner, app):
    app.config["INBOX_DEMO_CSV"] = ""
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    before = (count(User), count(Conversation), count(Message), count(ChannelAccount))
    assert before[1] > 0 and "generated" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0
    assert (count(User), count(Conversation), count(Message), count(ChannelAccount)) == before
    assert "admin@example.com" in second.output


def test_replay_events_processes_an_event_again_once_its_account_exists(runner, app):
    from inbox.models import EventIssue, EventState, InboundEvent
    from tests.conftest import WEBHOOK_FIXTURES

    event = InboundEvent(platform="x", body=(WEBHOOK_FIXTURES / "x_dm_event.json").read_bytes())
    db.session.add(event)
    db.session.commit()
    first = runner.invoke(args=["replay-events", "--id", str(event.id), "--inline"])
    assert first.exit_code == 0, first.output
    assert count(Message) == 0 and count(EventIssue) == 1  # unknown account, listed
    runner.invoke(
        args=[
            "add-channel",
            "--platform",
            "x",
            "--account-id",
            "1522093748110303232",
            "--name",
            "@BrightwaveHelp",
        ]
    )
    second = runner.invoke(args=["replay-events", "--id", str(event.id), "--inline"])
    assert second.exit_code == 0, second.output
    assert f"#{event.id} processed" in second.output
    assert count(Message) == 1 and count(EventIssue) == 0
    third = runner.invoke(args=["replay-events", "--id", str(event.id), "--inline"])
    assert third.exit_code == 0 and count(Message) == 1  # replaying never duplicates
    db.session.expire_all()
    assert db.session.get(InboundEvent, event.id).state is EventState.PROCESSED


def test_replay_events_needs_a_selection_and_names_unknown_ids(runner):
    assert "--failed" in runner.invoke(args=["replay-events"]).output
    result = runner.invoke(args=["replay-events", "--id", "999"])
    assert result.exit_code != 0 and "no such event: 999" in result.output
