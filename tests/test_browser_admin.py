"""Admin › People in real headless Chromium: an admin adds an agent and reads the one-time
password, the new agent signs in with it, and the admin deactivates them. Screenshot at
1366x768."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import Role
from inbox.services.accounts import get_or_create_team
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser


def test_an_admin_adds_an_agent_who_signs_in_then_is_deactivated(
    live_server, page: Page, browser, make_user, artifacts_dir
):
    admin = make_user(Role.ADMIN, name="Ada Admin", email="ada@example.com")
    get_or_create_team("Billing support")
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, admin.email)
    page.goto(live_server + "/admin/")
    page.get_by_role("link", name="People", exact=True).click()
    add = page.locator("[data-add-person]")
    add.get_by_label("Name").fill("Nia <b>New</b>")
    add.get_by_label("Email").fill("nia@example.com")
    add.get_by_label("Role").select_option("agent")
    add.get_by_label("Billing support").check()
    add.get_by_role("button", name="Add").click()
    expect(page.locator("[data-new-password]")).to_contain_text("Nia <b>New</b>")  # escaped
    password = page.locator("[data-password]").inner_text()
    expect(add.get_by_label("Name")).to_have_value("")  # ready for the next person
    page.screenshot(path=str(artifacts_dir / "admin-people.png"))

    newcomer = browser.new_page()
    sign_in(newcomer, live_server, "nia@example.com", password)
    expect(newcomer.locator(".me-name")).to_contain_text("Nia <b>New</b>")
    newcomer.close()

    row = page.locator('[data-person="nia@example.com"]')
    row.get_by_label("Nia <b>New</b> can sign in").uncheck()
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved Nia <b>New</b>")
    expect(page.locator('[data-person="nia@example.com"]')).to_have_class("inactive")
    again = browser.new_page()
    sign_in(again, live_server, "nia@example.com", password)
    expect(again.locator(".flash-error")).to_contain_text("Wrong email or password")
    again.close()


def test_an_admin_connects_a_whatsapp_number_then_pauses_it(
    live_server, page: Page, make_user, artifacts_dir
):
    admin = make_user(Role.ADMIN, name="Ada Admin", email="ada@example.com")
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, admin.email)
    page.goto(live_server + "/admin/")
    page.get_by_role("link", name="Channels", exact=True).click()
    expect(page.locator("[data-channels]")).to_contain_text("No channel accounts yet")
    add = page.locator("[data-add-channel]")
    add.get_by_label("Platform").select_option("whatsapp")
    add.get_by_label("Account id").fill("118273645501928")
    add.get_by_label("Name").fill("Acme <b>+1 555</b>")
    add.get_by_label("Access token").fill("EAAG-secret")
    add.get_by_role("button", name="Connect").click()
    expect(page.locator(".flash")).to_contain_text("WhatsApp 118273645501928 connected")
    row = page.locator('[data-channel="whatsapp:118273645501928"]')
    expect(row).to_contain_text("token stored")
    expect(row.get_by_label("Name of WhatsApp 118273645501928")).to_have_value(
        "Acme <b>+1 555</b>"  # escaped: the value as typed, not markup
    )
    # This server has no webhook secrets: the setup table says which to set.
    expect(page.locator('[data-endpoint="whatsapp"]')).to_contain_text(
        "missing: set INBOX_META_APP_SECRET"
    )
    page.screenshot(path=str(artifacts_dir / "admin-channels.png"), full_page=True)
    row.get_by_label("Acme <b>+1 555</b> is receiving").uncheck()
    row.get_by_role("button", name="Save").click()
    expect(page.locator('[data-channel="whatsapp:118273645501928"]')).to_have_class("inactive")
    expect(page.locator('[data-channel="whatsapp:118273645501928"]')).to_contain_text("paused")
    assert "EAAG-secret" not in page.content()
