"""POST /api/v1/messages: custom channels push messages, idempotent on their message id."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import Conversation, Direction, Message, Platform, Role
from inbox.services.accounts import create_api_token
from inbox.services.channels import add_channel


@pytest.fixture
def api(client, make_user):
    add_channel(Platform.API, "shop-chat", name="Shop live chat")
    token = create_api_token(make_user(Role.ADMIN))
    db.session.commit()

    def post(body, token=token):
        return client.post(
            "/api/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    return post


def body(**overrides):
    return {
        "channel": "shop-chat",
        "message_id": "chat-1",
        "author": {"id": "visitor-9", "name": "Dana", "handle": "dana"},
        "text": "Do you ship to Norway? 🇳🇴",
        "sent_at": "2026-11-20T09:15:00+01:00",
        **overrides,
    }


def test_message_is_stored_in_a_conversation_with_the_author(api):
    response = api(body())
    assert response.status_code == 201
    assert response.json["duplicate"] is False
    stored = db.session.get(Message, response.json["id"])
    assert stored.text == "Do you ship to Norway? 🇳🇴"
    assert stored.direction is Direction.INBOUND
    assert stored.sent_at.isoformat() == "2026-11-20T08:15:00+00:00"
    assert stored.author_identity.display_name == "Dana"
    assert stored.conversation.id == response.json["conversation_id"]


def test_sending_the_same_message_id_twice_stores_it_once(api):
    first = api(body())
    again = api(body(text="changed text is ignored"))
    assert again.status_code == 200
    assert again.json == {**first.json, "duplicate": True}
    assert db.session.scalar(select(func.count(Message.id))) == 1


def test_messages_of_one_author_share_a_dm_thread_and_thread_id_groups_explicitly(api):
    a = api(body(message_id="1")).json["conversation_id"]
    b = api(body(message_id="2", text="hello?")).json["conversation_id"]
    c = api(body(message_id="3", thread_id="ticket-77")).json["conversation_id"]
    d = api(body(message_id="4", thread_id="ticket-77", author={"id": "visitor-10"})).json[
        "conversation_id"
    ]
    assert a == b
    assert c == d != a
    assert db.session.scalar(select(func.count(Conversation.id))) == 2


def test_our_own_reply_can_be_recorded_as_outbound(api):
    api(body(message_id="q"))
    reply = api(
        body(
            message_id="a", direction="outbound", text="Yes we do!", sent_at="2026-11-20T08:30:00Z"
        )
    )
    assert reply.status_code == 201
    conversation = db.session.get(Conversation, reply.json["conversation_id"])
    assert conversation.first_response_at.isoformat() == "2026-11-20T08:30:00+00:00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"message_id": None}, "'message_id' is required"),
        ({"author": "dana"}, "'author' must be an object"),
        ({"text": "", "attachments": []}, "needs 'text' or 'attachments'"),
        ({"kind": "email"}, "'kind' must be one of"),
        ({"sent_at": "yesterday"}, "'sent_at' is not an ISO 8601"),
        ({"sent_at": "2026-11-20T09:15:00"}, "needs a time zone"),
        ({"is_public": "yes"}, "'is_public' must be true or false"),
        ({"text": "x" * 20_001}, "longer than 20000"),
    ],
)
def test_invalid_fields_get_a_clear_400(api, change, message):
    response = api({k: v for k, v in body(**change).items() if v is not None})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid"
    assert message in response.json["error"]["message"]
    assert db.session.scalar(select(func.count(Message.id))) == 0


def test_body_that_is_not_json_gets_a_400(client, api):
    response = api(None)
    assert response.status_code == 400


def test_unknown_channel_is_422_and_names_the_fix(api):
    response = api(body(channel="nope"))
    assert response.status_code == 422
    assert "add-channel --platform api" in response.json["error"]["message"]


def test_agents_tokens_cannot_ingest(api, make_user):
    token = create_api_token(make_user(Role.AGENT))
    db.session.commit()
    assert api(body(), token=token).status_code == 403
