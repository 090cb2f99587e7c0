"""Fetching what a webhook names only by id (Instagram mentions) from the local fake Graph API:
the documented request, the message it completes, and how refusals and outages are classified."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from inbox.connectors import (
    PermanentSendError,
    TransientSendError,
    connector_for_platform,
    get_connector,
)
from tests.connectors.test_connector_send import endpoint
from tests.fake_platforms import graph_error, server_error

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
IG_ACCOUNT = "17841460123456789"
COMMENT = "17866011223344556"
TOKEN = "ig-token-not-logged"


def mention(**changes):
    payload = json.loads((FIXTURES / "meta_instagram_mention.json").read_bytes())
    value = payload["entry"][0]["changes"][0]["value"]
    value.update(changes)
    payload["entry"][0]["changes"][0]["value"] = {k: v for k, v in value.items() if v is not None}
    [parsed] = get_connector("meta").parse(payload)
    return parsed


def fetch(fake_platforms, message):
    return connector_for_platform("instagram").fetch(
        message, endpoint(fake_platforms, "instagram"), access_token=TOKEN
    )


def test_comment_mention_is_read_through_the_account_with_its_author_and_time(fake_platforms):
    fake_platforms.add_mention(
        COMMENT,
        text="@brightwave my router is blinking red again 😩",
        username="ellie.makes",
        timestamp="2025-03-18T07:45:50+0000",
        **{"from": {"id": "17850001112223334", "username": "ellie.makes"}},
    )
    done = fetch(fake_platforms, mention())
    assert done.needs_fetch is False
    assert done.text == "@brightwave my router is blinking red again 😩"
    assert (done.author_id, done.author_handle) == ("17850001112223334", "ellie.makes")
    assert done.sent_at == datetime(2025, 3, 18, 7, 45, 50, tzinfo=UTC)
    # Everything the webhook said is kept.
    assert (done.external_id, done.root_external_id, done.kind) == (
        COMMENT,
        "17918273645012987",
        "mention",
    )
    [call] = fake_platforms.calls
    url = urlsplit(call.path)
    assert call.method == "GET" and url.path.endswith(f"/{IG_ACCOUNT}")
    assert parse_qs(url.query)["fields"][0].startswith(f"mentioned_comment.comment_id({COMMENT})")
    assert call.token == TOKEN and TOKEN not in call.path


def test_caption_mention_reads_the_mentioned_media(fake_platforms):
    fake_platforms.add_mention(
        "17918273645012987", caption="Loving my new @brightwave plan", username="kai"
    )
    done = fetch(fake_platforms, mention(comment_id=None))
    assert (done.text, done.author_id, done.author_handle) == (
        "Loving my new @brightwave plan",
        "kai",  # no IGSID in a media answer: the username identifies the author
        "kai",
    )
    fields = parse_qs(urlsplit(fake_platforms.calls[0].path).query)["fields"][0]
    assert fields.startswith("mentioned_media.media_id(17918273645012987)")


def test_a_refusal_is_permanent_with_metas_words(fake_platforms):
    # No mention registered: the fake answers as Meta does for a comment it cannot load.
    with pytest.raises(PermanentSendError) as refused:
        fetch(fake_platforms, mention())
    assert refused.value.code == "100"
    assert "Object does not exist" in refused.value.message


def test_an_outage_or_rate_limit_is_worth_retrying(fake_platforms):
    fake_platforms.fail(server_error())
    with pytest.raises(TransientSendError):
        fetch(fake_platforms, mention())
    fake_platforms.fail(graph_error(4, "(#4) Application request limit reached"))
    with pytest.raises(TransientSendError):
        fetch(fake_platforms, mention())


def test_other_messages_cannot_be_fetched(fake_platforms):
    dm = dataclasses.replace(mention(), kind="dm")
    with pytest.raises(PermanentSendError):
        fetch(fake_platforms, dm)
    assert fake_platforms.calls == []
