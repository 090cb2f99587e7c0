"""POST /api/v1/conversations/<id>/replies: answers, errors and who may reply."""

from __future__ import annotations

import pytest

from inbox.extensions import db
from inbox.models import ApiToken, Role
from inbox.services.accounts import create_api_token, get_or_create_team
from tests.support.replies import CASES, make_conversation


@pytest.fixture
def api(client, make_user):
    """Make a user with `role` in `team` and return a poster bound to their token."""

    def factory(role: Role = Role.AGENT, team: str = "Social care"):
        user = make_user(role, team=team)
        token = create_api_token(user)
        db.session.commit()

        def post(conversation_id: int, payload=None, **kwargs):
            return client.post(
                f"/api/v1/conversations/{conversation_id}/replies",
                json=payload,
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )

        return post

    return factory


def conversation_of(team: str | None, case: str = "messenger"):
    return make_conversation(CASES[case], team=get_or_create_team(team) if team else None)


def test_reply_is_created_queued_and_returned_with_201(app, api):
    conversation = conversation_of("Social care")
    response = api()(conversation.id, {"text": "We're on it!"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["text"] == "We're on it!"
    assert body["direction"] == "outbound"
    assert body["status"] == "queued"
    assert body["external_id"] is None
    assert body["author"]["name"] == "Test Agent"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "   "}, "empty"),
        ({"text": "a" * 2001}, "2000 characters"),
        ({"text": "hi", "is_public": True}, "only be answered privately"),
        ({"text": "hi", "is_public": "yes"}, "is_public"),
        ({"body": "hi"}, '"text"'),
        (None, '"text"'),
    ],
)
def test_invalid_replies_are_400_with_a_clear_message(app, api, payload, message):
    conversation = conversation_of("Social care")
    response = api()(conversation.id, payload)
    assert response.status_code == 400
    assert message in response.json["error"]["message"]
    db.session.expire_all()
    assert conversation.message_count == 1


def test_reply_on_a_channel_without_token_is_409(app, api):
    conversation = make_conversation(CASES["whatsapp"], token=None)
    response = api()(conversation.id, {"text": "hello"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "reply_conflict"


def test_unknown_conversation_is_404(app, api):
    assert api()(999, {"text": "hi"}).status_code == 404


@pytest.mark.parametrize(
    ("role", "user_team", "conversation_team", "status"),
    [
        (Role.AGENT, "Social care", "Social care", 201),
        (Role.AGENT, "Social care", None, 201),  # the shared queue
        (Role.AGENT, "Social care", "Billing support", 404),
        (Role.SUPERVISOR, "Social care", "Billing support", 201),
        (Role.ADMIN, "Social care", "Billing support", 201),
    ],
)
def test_only_users_who_may_act_on_the_conversation_can_reply(
    app, api, role, user_team, conversation_team, status
):
    post = api(role, team=user_team)
    conversation = conversation_of(conversation_team)
    assert post(conversation.id, {"text": "hello"}).status_code == status


def test_agent_may_reply_to_a_conversation_assigned_to_them_in_another_team(app, api):
    post = api(Role.AGENT, team="Social care")
    conversation = conversation_of("Billing support")
    conversation.assignee_id = db.session.query(ApiToken).one().user_id
    db.session.commit()
    assert post(conversation.id, {"text": "hello"}).status_code == 201


def test_reply_without_a_token_is_401(app, client):
    conversation = conversation_of("Social care")
    response = client.post(f"/api/v1/conversations/{conversation.id}/replies", json={"text": "x"})
    assert response.status_code == 401
