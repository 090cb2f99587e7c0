"""The agent inbox in real headless Chromium: keyboard work, notes with @mentions reaching a
colleague live, live updates over SSE + Redis between two browsers, the collision warning,
bulk actions, canned responses, and screenshots of the main screens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import Conversation, Role, Status
from inbox.services.canned import create_response
from inbox.services.conversations import add_tag, assign
from inbox.timeutil import utcnow
from tests import factories
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser

# Tests ask for live_server before page, so the browser page (with its live stream and
# heartbeats) is closed before the server stops and the tables are dropped.


@pytest.fixture
def people(make_user):
    return {
        "alice": make_user(Role.AGENT, name="Alice Agent", email="alice@example.com"),
        "bob": make_user(Role.AGENT, name="Bob Builder", email="bob@example.com"),
    }


def fresh(conversation_id: int) -> Conversation:
    db.session.expire_all()
    return db.session.get(Conversation, conversation_id)


def open_inbox(page: Page, base: str, email: str, path: str = "/inbox") -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, base, email)
    if path != "/inbox":
        page.goto(base + path)
    expect(page.locator("body[data-live=on]")).to_have_count(1)  # the SSE stream is connected


def test_keyboard_open_claim_resolve_and_undo(live_server, page: Page, people, artifacts_dir):
    convs = [
        factories.conversation(team="Social care", text=f"Question number {i}", name=f"Cust {i}")
        for i in range(3)
    ]
    open_inbox(page, live_server, people["alice"].email)
    page.screenshot(path=str(artifacts_dir / "inbox-queue.png"))
    first_row = page.locator(".row").first
    first_id = int(first_row.get_attribute("data-conversation"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(first_row).to_have_class(re.compile(r"\bcursor\b"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/inbox/c/{first_id}"))
    expect(page.locator(".convo h1")).to_be_visible()
    page.keyboard.press("a")
    expect(page.locator(".toast").filter(has_text="Assigned to you")).to_be_visible()
    expect(page.locator(".assigned-line")).to_contain_text("Alice Agent")
    page.keyboard.press("e")
    toast = page.locator(".toast").filter(has_text="Resolved")
    expect(toast).to_be_visible()
    assert fresh(first_id).status is Status.RESOLVED
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast").filter(has_text="Undone")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_text("open")
    page.keyboard.press("n")
    expect(page.locator("[data-note-box]")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "inbox-help.png"))
    page.keyboard.press("Escape")
    expect(page.locator("[data-help]")).to_be_hidden()
    assert len(convs) == 3


def test_note_with_mention_notifies_the_colleague_live(
    live_server, browser, page: Page, people, artifacts_dir
):
    c = factories.conversation(team="Social care", text="Where is my refund?", name="Maria Lopez")
    bob_context = browser.new_context(viewport={"width": 1366, "height": 768})
    bob = bob_context.new_page()
    open_inbox(bob, live_server, people["bob"].email)
    expect(bob.locator("[data-notification-count]")).to_be_hidden()

    open_inbox(page, live_server, people["alice"].email, f"/inbox/c/{c.id}")
    page.keyboard.press("n")
    page.keyboard.type("@bob can you check the refund status?")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".toast").filter(has_text="notified Bob Builder")).to_be_visible()
    expect(page.locator(".msg-note")).to_contain_text("@bob can you check the refund status?")
    page.screenshot(path=str(artifacts_dir / "inbox-conversation.png"))

    # Bob's page hears it over SSE: the bell shows 1 without a reload.
    expect(bob.locator("[data-notification-count]")).to_have_text("1")
    bob.locator("[data-bell]").click()
    item = bob.locator(".notification").first
    expect(item).to_contain_text("Alice Agent mentioned you")
    item.get_by_role("link").click()
    expect(bob).to_have_url(re.compile(rf"/inbox/c/{c.id}$"))
    bob_context.close()


def test_colleague_change_shows_live_and_a_stale_note_warns_before_applying(
    live_server, browser, page: Page, people, artifacts_dir
):
    c = factories.conversation(team="Social care", text="App crashes on start", name="Wei Chen")
    bob_context = browser.new_context(viewport={"width": 1366, "height": 768})
    bob = bob_context.new_page()
    open_inbox(bob, live_server, people["bob"].email, f"/inbox/c/{c.id}")
    bob.locator("[data-note-box]").fill("I think this is the known crash")
    bob.locator("[data-note-box]").press("Space")  # a keystroke: Bob is typing

    open_inbox(page, live_server, people["alice"].email, f"/inbox/c/{c.id}")
    # Presence: Alice sees Bob in the conversation (typing).
    expect(page.locator("[data-presence-text]")).to_contain_text("Bob Builder")
    page.locator("[data-action=claim] button").click()
    expect(page.locator(".toast").filter(has_text="Assigned to you")).to_be_visible()

    # Bob's list updates live (Alice's initials on the row) and he is warned, not overwritten.
    row = bob.locator(f'.row[data-conversation="{c.id}"]')
    expect(row.locator(".assignee")).to_have_text("AA")
    bob.locator("[data-note-box]").press("Control+Enter")
    warning = bob.locator(".toast.warn").filter(has_text="changed since you opened it")
    expect(warning).to_be_visible()
    bob.screenshot(path=str(artifacts_dir / "inbox-collision.png"))
    assert [m.text for m in fresh(c.id).messages] == ["App crashes on start"]
    warning.get_by_role("button", name="Apply anyway").click()
    expect(bob.locator(".msg-note")).to_contain_text("I think this is the known crash")
    bob_context.close()


def test_a_colleagues_change_refreshes_the_pane_without_losing_the_reply_being_typed(
    live_server, browser, page: Page, people
):
    c = factories.conversation(team="Social care", text="Router light is red", name="Ana Díaz")
    open_inbox(page, live_server, people["alice"].email, f"/inbox/c/{c.id}")
    reply = page.get_by_label("Reply", exact=True)
    reply.click()
    page.keyboard.type("Hi Ana, could you try")
    bob_context = browser.new_context(viewport={"width": 1366, "height": 768})
    bob = bob_context.new_page()
    open_inbox(bob, live_server, people["bob"].email, f"/inbox/c/{c.id}")
    bob.get_by_label("Priority", exact=True).select_option("urgent")
    # Alice's pane shows Bob's change live …
    expect(page.get_by_label("Priority", exact=True)).to_have_value("urgent")
    # … and she keeps typing where she was, in the re-rendered composer.
    page.keyboard.type(" restarting it?")
    expect(reply).to_have_value("Hi Ana, could you try restarting it?")
    expect(page.locator("[data-reply-count]")).to_have_text("36")
    bob_context.close()


def test_new_message_from_ingestion_appears_live_in_counts_and_list(
    page: Page, live_server, people
):
    open_inbox(page, live_server, people["alice"].email, "/inbox/unassigned")
    expect(page.locator('[data-count="unassigned"]')).to_have_text("0")
    factories.conversation(team="Social care", text="Fresh from the webhook", name="New Person")
    expect(page.locator('[data-count="unassigned"]')).to_have_text("1")
    expect(page.locator(".row .snippet")).to_contain_text("Fresh from the webhook")


def test_bulk_spam_with_shift_click_range_and_confirm(live_server, page: Page, people):
    convs = [
        factories.conversation(team="Social care", text=f"Buy followers {i}") for i in range(4)
    ]
    open_inbox(page, live_server, people["alice"].email)
    boxes = page.locator("[data-pick]")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])
    expect(page.locator("[data-bulk-count]")).to_have_text("3")
    page.locator("[data-bulkbar] [data-bulk=spam]").click()
    expect(page.locator("[data-confirm]")).to_contain_text("Mark 3 conversations as spam?")
    page.locator("[data-confirm-yes]").click()
    expect(
        page.locator(".toast").filter(has_text="Marked as spam: 3 conversations")
    ).to_be_visible()
    expect(page.locator(".row")).to_have_count(1)
    expect(page.locator('[data-count="spam"]')).to_have_text("3")
    assert sum(fresh(c.id).is_spam for c in convs) == 3


def test_a_picked_canned_response_lands_in_the_reply_box(
    live_server, page: Page, people, make_user, artifacts_dir
):
    admin = make_user(Role.ADMIN)
    create_response(
        "Apology",
        "Sorry {{contact_first_name}}, {{agent_first_name}} here.",
        actor=admin,
        now=utcnow(),
    )
    c = factories.conversation(team="Social care", name="Priya <b>K</b>")
    db.session.commit()
    open_inbox(page, live_server, people["alice"].email, f"/inbox/c/{c.id}")
    picker = page.locator(".reply-form [data-canned]")
    expect(page.locator(".note-form [data-canned]")).to_have_count(0)
    # Even with the note focused last: the picker belongs to the reply and fills the reply.
    page.locator("[data-note-box]").focus()
    picker.select_option(label="Apology")
    expect(page.locator("[data-reply-box]")).to_have_value("Sorry Priya, Alice here.")
    expect(page.locator("[data-note-box]")).to_have_value("")
    expect(picker).to_have_value("")  # ready to pick again
    page.screenshot(path=str(artifacts_dir / "inbox-canned-reply.png"))


def test_empty_state_and_hostile_content(live_server, page: Page, people, artifacts_dir):
    c = factories.conversation(team="Social care", text="<img src=x onerror=window.pwned=1>")
    open_inbox(page, live_server, people["alice"].email, "/inbox/mine")
    expect(page.locator("[data-empty]")).to_contain_text("Nothing assigned to you.")
    page.screenshot(path=str(artifacts_dir / "inbox-empty.png"))
    page.goto(live_server + f"/inbox/c/{c.id}")
    expect(page.locator(".msg-inbound .msg-text")).to_have_text(
        "<img src=x onerror=window.pwned=1>"
    )
    assert page.evaluate("window.pwned") is None


def test_a_long_tag_is_cut_with_an_ellipsis_and_the_tags_wrap_inline_in_the_row(
    live_server, page: Page, people, artifacts_dir
):
    long_tag = "warranty-claim-" + "x" * 49  # 64 characters, the longest a tag may be
    c = factories.conversation(team="Social care", name="Tagged Tina")
    for name in ("vip", "refund", long_tag):
        add_tag(c, name, actor=None, now=utcnow())
    db.session.commit()
    open_inbox(page, live_server, people["alice"].email, "/inbox/open")
    row = page.locator(".row", has_text="Tagged Tina")
    long = row.locator(".tag", has_text="warranty-claim")
    expect(long).to_have_attribute("title", long_tag)
    # Cut, not overflowing: the tag's text is wider than its box, the row no wider than itself.
    assert long.evaluate("e => e.scrollWidth > e.clientWidth")
    assert long.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert row.evaluate("e => e.scrollWidth <= e.clientWidth")
    tops = row.locator(".tag").evaluate_all("tags => tags.map(t => t.getBoundingClientRect().top)")
    assert len(set(tops)) < len(tops)  # several tags share a line
    row.screenshot(path=str(artifacts_dir / "inbox-row-long-tag.png"))


def test_on_a_phone_the_queue_and_the_conversation_take_turns(
    live_server, page: Page, people, artifacts_dir
):
    factories.conversation(team="Social care", text="Router keeps rebooting", name="Phone Phil")
    open_inbox(page, live_server, people["alice"].email, "/inbox/open")
    page.set_viewport_size({"width": 390, "height": 844})
    # Nothing wider than the screen, and the views are reachable as a strip.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator(".views").get_by_role("link", name=re.compile("Mine"))).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
    page.screenshot(path=str(artifacts_dir / "inbox-phone-queue.png"))
    page.locator(".row", has_text="Phone Phil").click()
    expect(page.locator(".convo h1")).to_have_text("Phone Phil")
    expect(page.locator(".msg-inbound")).to_contain_text("Router keeps rebooting")
    expect(page.get_by_label("Reply", exact=True)).to_be_visible()
    expect(page.locator(".queue")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "inbox-phone-conversation.png"))
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.locator(".row", has_text="Phone Phil")).to_be_visible()
    expect(page.locator(".detail")).to_be_hidden()


def test_the_conversation_toolbar_fits_on_one_line_at_1440_for_a_supervisor(
    live_server, page: Page, people, make_user, artifacts_dir
):
    boss = make_user(Role.SUPERVISOR, name="Sam Supervisor", email="sam@example.com")
    c = factories.conversation(team="Billing support", name="Wide Wanda")  # longest demo team
    assign(c, people["bob"], actor=boss, now=utcnow())
    db.session.commit()
    sign_in(page, live_server, boss.email)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server + f"/inbox/c/{c.id}")
    toolbar = page.locator(".convo .toolbar")
    spans = toolbar.locator("button, select").evaluate_all(
        "els => els.filter(e => e.offsetWidth).map(e => e.getBoundingClientRect())"
        ".map(r => [r.top, r.bottom])"
    )
    page.screenshot(path=str(artifacts_dir / "inbox-toolbar-1440.png"))
    # One line: every control overlaps every other vertically.
    assert max(top for top, _ in spans) < min(bottom for _, bottom in spans), spans
    spam = toolbar.get_by_role("button", name="Spam")
    expect(spam).to_be_visible()
    # A button, not text: it has a visible border.
    assert spam.evaluate("e => getComputedStyle(e).borderTopColor") != "rgba(0, 0, 0, 0)"


def test_applied_filters_leave_the_ones_at_any_out_of_the_address(live_server, page: Page, people):
    factories.conversation(team="Social care", name="Xavier X")
    open_inbox(page, live_server, people["alice"].email, "/inbox/open")
    page.get_by_text("Filters").click()
    page.get_by_label("Visibility").select_option("private")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/inbox/open\?"))
    assert page.url.split("?", 1)[1] == "sort=sla&public=private"  # no "platform=&kind=…"
    expect(page.get_by_label("Visibility")).to_have_value("private")
    expect(page.locator(".queue")).to_contain_text("Xavier X")  # a DM: private
