"""In Chromium: an agent answers a customer from the conversation pane (counter, Ctrl+Enter,
the reply in the thread) and sees the SLA badge and timeline; the reply then goes out through
a real worker to the (local, fake) platform and shows as sent."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import DeliveryStatus, Direction, Message, Role, SlaPolicy
from inbox.timeutil import utcnow
from tests.conftest import wait_for
from tests.test_browser_inbox import open_inbox
from tests.test_inbox_sla_replies import fresh_conversation

pytestmark = pytest.mark.browser


@pytest.fixture
def worker_env(fake_platforms):
    return fake_platforms.env()


def test_agent_replies_and_the_reply_is_sent_to_the_platform(
    live_server, page: Page, make_user, worker_process, fake_platforms, artifacts_dir
):
    db.session.add(
        SlaPolicy(position=1, name="Default", first_response_seconds=3600, business_hours=False)
    )
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    conversation = fresh_conversation(minutes_ago=50)
    open_inbox(page, live_server, agent.email, f"/inbox/c/{conversation.id}")
    expect(page.locator(".convo-head .sla-badge")).to_have_class(re.compile("sla-(ok|warning)"))
    expect(page.locator(".sla-timeline")).to_contain_text("First response")
    box = page.get_by_label("Reply", exact=True)
    text = "Sorry about the drop-outs! An engineer is booked for tomorrow 🛠️"
    box.fill(text)
    expect(page.locator("[data-reply-count]")).to_have_text(str(len(text)))  # code points
    page.screenshot(path=str(artifacts_dir / "reply-composer.png"))
    box.press("Control+Enter")
    expect(page.locator(".msg-outbound")).to_contain_text("An engineer is booked")
    expect(box).to_have_value("")

    def sent():
        db.session.expire_all()
        reply = db.session.query(Message).filter_by(direction=Direction.OUTBOUND).one_or_none()
        return reply if reply and reply.delivery_status is DeliveryStatus.SENT else None

    reply = wait_for(sent, timeout=30, what="the worker to send the reply")
    call = fake_platforms.calls[-1]
    assert call.body["message"]["text"].endswith("tomorrow 🛠️")
    assert reply.external_id  # the platform's id, for its echo and delivery receipts
    page.reload()
    expect(page.locator(".msg-outbound .delivery")).to_have_text("sent")
    expect(page.locator(".sla-timeline")).to_contain_text("met")
    assert utcnow() - reply.sent_at < timedelta(minutes=2)


def test_a_channel_that_cannot_send_is_said_in_the_composer_and_its_error_is_not_a_conflict(
    live_server, page: Page, make_user
):
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    conversation = fresh_conversation(minutes_ago=5)
    open_inbox(page, live_server, agent.email, f"/inbox/c/{conversation.id}")
    # The channel loses its token while the agent writes: the send is refused (409).
    conversation.channel_account.access_token_encrypted = None
    db.session.commit()
    page.get_by_label("Reply", exact=True).fill("Sorry about that")
    page.get_by_role("button", name="Send reply").click()
    toast = page.locator(".toast.error").filter(has_text="no access token is stored")
    expect(toast).to_be_visible()
    # Not offered as a colleague's edit to override ("Apply anyway" would resend without a
    # version and fail again).
    expect(page.locator(".toast").get_by_role("button", name="Apply anyway")).to_have_count(0)
    assert db.session.query(Message).filter_by(direction=Direction.OUTBOUND).count() == 0
    # Opened again, the composer says so before anything is written, and does not send.
    page.reload()
    expect(page.locator("[data-send-problem]")).to_contain_text("Ask an admin to connect it")
    send = page.get_by_role("button", name="Send reply")
    expect(send).to_be_disabled()
    # and looks it: a disabled button that kept the primary style read as "press me"
    assert float(send.evaluate("b => getComputedStyle(b).opacity")) < 0.5
