"""In real headless Chromium: sign in and see the signed-in shell with the demo data counts, on a
phone too; an agent who is offline is told so and goes online from the note."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import Availability, Role
from inbox.services.demo import load_demo
from inbox.timeutil import utcnow
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(app):
    summary = load_demo(csv_path=None, now=utcnow())
    db.session.commit()
    return summary


def sign_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_agent_signs_in_and_sees_the_shell_with_counts(
    page: Page, live_server, make_user, demo, artifacts_dir
):
    agent = make_user(Role.AGENT, name="Alice Agent")
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, agent.email)
    expect(page).to_have_url(re.compile(r"/inbox$"))
    expect(page.locator(".me-name")).to_contain_text("Alice Agent")
    # The counts arrive after the page, from the page's own request for them.
    count = page.locator('[data-count="open"]')
    expect(count).to_have_text(re.compile(r"^\d+$"))
    open_count = int(count.inner_text())
    assert open_count > 0
    assert page.locator(".rows .row").count() == min(open_count, 50)
    # An agent's navigation has no supervisor or admin pages.
    expect(page.get_by_role("link", name="Reports")).to_have_count(0)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "shell-agent.png"))


def test_admin_navigates_to_reports_and_admin(page: Page, live_server, make_user, demo):
    admin = make_user(Role.ADMIN)
    sign_in(page, live_server, admin.email)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="SLA report")).to_be_visible()
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Workspace")).to_be_visible()


def test_wrong_password_shows_an_error_in_the_browser(page: Page, live_server, make_user):
    agent = make_user()
    sign_in(page, live_server, agent.email, "nope")
    expect(page.locator(".flash-error")).to_contain_text("Wrong email or password")


def test_hostile_message_text_is_shown_as_text_not_run(page: Page, live_server, make_user, app):
    from datetime import timedelta

    from inbox.models import Direction, Kind, Platform
    from inbox.services.channels import add_channel
    from inbox.services.ingest import (
        Profile,
        add_message,
        get_or_create_conversation,
        resolve_identity,
    )

    account, _ = add_channel(Platform.X, "1", name="@brand")
    who = resolve_identity(Profile(Platform.X, "666", display_name="<img src=x onerror=alert(1)>"))
    conversation, _ = get_or_create_conversation(
        account, "dm:666", kind=Kind.DM, is_public=False, contact=who.contact
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        author_identity=who,
        text="<script>window.pwned=1</script> hi",
        sent_at=utcnow() - timedelta(minutes=1),
        external_id="m1",
    )
    db.session.commit()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, live_server, make_user().email)
    expect(page.locator(".snippet").first).to_contain_text("<script>window.pwned=1</script> hi")
    expect(page.locator(".who").first).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.evaluate("window.pwned") is None
    assert dialogs == []


def test_only_the_three_newest_toasts_stay_on_screen_besides_a_sticky_one(
    page: Page, live_server, make_user
):
    sign_in(page, live_server, make_user(Role.AGENT).email)
    expect(page).to_have_url(re.compile(r"/inbox$"))
    page.evaluate(
        "window.inboxApp.toast('Changed since you opened it', {sticky: true});"
        "for (let i = 1; i <= 5; i++) window.inboxApp.toast('Done ' + i)"
    )
    toasts = page.locator("[data-toasts] .toast")
    expect(toasts).to_have_text(["Changed since you opened it", "Done 3", "Done 4", "Done 5"])


PHONE_PAGES = [
    "/inbox",
    "/reports/",
    "/agents",
    "/notifications",
    "/admin/",
    "/admin/people",
    "/admin/channels",
    "/admin/canned",
    "/admin/helpdesk",
    "/admin/imports",
    "/admin/sla/",
    "/admin/sla/calendars/new",
    "/admin/routing/",
    "/admin/routing/rules/new",
]


def test_on_a_phone_no_page_scrolls_sideways_and_sign_out_stays_on_screen(
    page: Page, live_server, make_user, demo, artifacts_dir
):
    admin = make_user(Role.ADMIN, name="Ada Admin")  # the most links in the top bar
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, admin.email)
    wide = {}
    for path in PHONE_PAGES:
        page.goto(live_server + path)
        expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
        expect(page.get_by_label("Your availability")).to_be_in_viewport()
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
            page.screenshot(path=str(artifacts_dir / f"phone-wide{path.replace('/', '-')}.png"))
    for path, name in (("/reports/", "reports-phone"), ("/admin/channels", "admin-phone")):
        page.goto(live_server + path)
        page.screenshot(path=str(artifacts_dir / f"{name}.png"))
    assert wide == {}


def test_an_agent_who_is_offline_is_told_so_and_goes_online_from_the_note(
    page: Page, live_server, make_user
):
    agent = make_user(Role.AGENT, name="Alice Agent")
    sign_in(page, live_server, agent.email)
    note = page.locator("[data-availability-note]")
    expect(note).to_contain_text("You are offline: no conversations are assigned to you")
    page.evaluate("window.sameDocument = true")
    note.get_by_role("button", name="Go online").click()
    expect(note).to_be_hidden()
    expect(page.get_by_label("Your availability")).to_have_value("online")
    expect(page.locator("[data-availability-dot]")).to_have_class("avail-dot avail-online")
    assert page.evaluate("window.sameDocument") is True  # no reload
    db.session.expire_all()
    assert agent.availability is Availability.ONLINE
    page.reload()
    expect(page.locator("[data-availability-note]")).to_have_count(0)
