"""Replies end to end through the real RQ worker to the fake platform server: every platform's
send call, retries with backoff (honouring the platform's retry-after), permanent failures and
the agent's retry, and no token in any log or record."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import AuditEvent, DeliveryStatus, Direction, Message, Role
from inbox.services.replies import create_reply, retry_reply
from tests.conftest import wait_for
from tests.fake_platforms import (
    FakePlatforms,
    server_error,
    whatsapp_window_closed,
    x_rate_limited,
)
from tests.support.replies import CASES, NOW, TOKEN, make_conversation


@pytest.fixture(scope="module")
def fake():
    server = FakePlatforms().start()
    yield server
    server.stop()


SETTINGS = {"INBOX_SEND_RETRY_INTERVALS": [1, 1]}


@pytest.fixture
def app(make_app, fake):
    fake.reset()
    app = make_app(**fake.config(), **SETTINGS)
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def worker_env(fake):
    return {**fake.env(), "INBOX_SEND_RETRY_INTERVALS": "1,1"}


@pytest.fixture
def agent(make_user):
    return make_user(Role.AGENT)


def send_reply(case_name: str, agent, text: str = "Thanks, we're on it. ^Priya") -> int:
    conversation = make_conversation(CASES[case_name])
    message = create_reply(conversation, text=text, actor=agent, now=NOW)
    db.session.commit()
    return message.id


def wait_for_status(message_id: int, status: DeliveryStatus, timeout: float = 30) -> Message:
    def check():
        db.session.expire_all()
        message = db.session.get(Message, message_id)
        return message if message.delivery_status is status else None

    return wait_for(check, timeout=timeout, what=f"message {message_id} to be {status}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_reply_reaches_the_platform_through_the_worker_and_is_marked_sent(
    app, agent, fake, worker_process, name
):
    case = CASES[name]
    message_id = send_reply(name, agent, text="Hi 👋 — fixed now")
    sent = wait_for_status(message_id, DeliveryStatus.SENT)

    [call] = fake.calls
    assert call.path == case.path
    assert call.body == case.expected_body("Hi 👋 — fixed now")
    assert call.token == TOKEN
    answer_id = {
        "x_dm": lambda: sent.external_id.isdigit(),
        "x_reply_tweet": lambda: sent.external_id.isdigit(),
        "messenger": lambda: sent.external_id.startswith("m_"),
        "whatsapp": lambda: sent.external_id.startswith("wamid."),
    }.get(name, lambda: bool(sent.external_id))
    assert answer_id()
    assert sent.delivery_error is None


def test_transient_failure_is_retried_and_the_reply_is_sent_once(app, agent, fake, worker_process):
    fake.fail(server_error())
    message_id = send_reply("messenger", agent)
    sent = wait_for_status(message_id, DeliveryStatus.SENT)

    assert len(fake.calls) == 2  # one 500, one success
    outbound = db.session.scalars(
        select(Message).where(
            Message.conversation_id == sent.conversation_id,
            Message.direction == Direction.OUTBOUND,
        )
    ).all()
    assert [m.id for m in outbound] == [message_id]


def test_rate_limit_waits_as_long_as_the_platform_asks(app, agent, fake, worker_process):
    # The configured backoff is 1 s; X says the window resets in 3-4 s (whole epoch seconds).
    fake.fail(x_rate_limited(reset_in=4))
    message_id = send_reply("x_reply_tweet", agent)
    wait_for_status(message_id, DeliveryStatus.SENT)

    first, second = fake.calls
    assert second.at - first.at >= 2.9


def test_reply_fails_after_the_last_retry_with_the_reason(app, agent, fake, worker_process):
    fake.fail(server_error(), times=10)
    message_id = send_reply("instagram_comment", agent)
    failed = wait_for_status(message_id, DeliveryStatus.FAILED)

    assert len(fake.calls) == 3  # the first attempt and two retries
    assert failed.delivery_error.startswith("Gave up after repeated temporary errors")


def test_permanent_failure_is_shown_and_an_agent_retry_sends_it(
    app, agent, fake, worker_process, tmp_path
):
    fake.fail(whatsapp_window_closed())
    message_id = send_reply("whatsapp", agent)
    failed = wait_for_status(message_id, DeliveryStatus.FAILED)
    assert "(#131047) Re-engagement message" in failed.delivery_error
    assert len(fake.calls) == 1  # a permanent error is not retried

    retry_reply(failed, actor=db.session.merge(agent), now=NOW)
    db.session.commit()
    sent = wait_for_status(message_id, DeliveryStatus.SENT)
    assert sent.external_id.startswith("wamid.")
    assert len(fake.calls) == 2

    # Neither the worker's log nor any stored record contains the token.
    log = (tmp_path / "worker.log").read_text()
    assert f"reply {message_id} sent on whatsapp" in log  # the log did capture the sends
    assert TOKEN not in log
    records = [json.dumps([a.before, a.after]) for a in db.session.scalars(select(AuditEvent))]
    assert not any(TOKEN in r for r in records)
