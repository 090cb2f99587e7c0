"""Admin › Import in real headless Chromium with a real worker process: an admin uploads a TWCS
file from the Workspace page, and the import's row moves from waiting to imported on its own
(the page polls it; no reload), ending with what was created; a wrong file is refused on the
page. Screenshots at 1366x768."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import Conversation, Role
from inbox.services.accounts import get_or_create_team
from tests import factories
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser


def test_an_admin_uploads_a_file_and_watches_it_import_without_reloading(
    live_server, page: Page, make_user, worker_process, artifacts_dir
):
    admin = make_user(Role.ADMIN, name="Ada Admin")
    get_or_create_team("Social care")
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, admin.email)
    page.goto(live_server + "/admin/")
    page.get_by_role("link", name="Import conversations (CSV)").click()
    expect(page.locator("[data-imports]")).to_contain_text("No imports yet.")

    page.get_by_label("CSV file").set_input_files(
        {"name": "wrong.csv", "mimeType": "text/csv", "buffer": b"name,email\nA,a@b.c\n"}
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".field-error")).to_contain_text("This is not a TWCS file")

    page.get_by_label("CSV file").set_input_files(
        {"name": "history <2017>.csv", "mimeType": "text/csv", "buffer": factories.twcs_file(600)}
    )
    page.get_by_label("Team").select_option(label="Social care")
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".flash")).to_contain_text("“history <2017>.csv” is stored")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    row = page.locator("[data-import]").first
    expect(row.locator(".import-file")).to_have_text("history <2017>.csv")

    expect(row).to_have_attribute("data-state", "done", timeout=60_000)
    expect(row).to_contain_text("600 conversations and 1,200 messages created from 1,200 rows")
    expect(row.locator("progress")).to_have_attribute("value", "1")
    assert page.evaluate("window.sameDocument") is True
    page.screenshot(path=str(artifacts_dir / "admin-import.png"))
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Conversation.id))) == 600

    row.get_by_role("link", name="Open the inbox").click()
    expect(page.locator("[data-conversation]").first).to_be_visible()
