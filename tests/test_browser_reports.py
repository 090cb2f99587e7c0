"""In real headless Chromium: a supervisor reads the SLA report, filters it, drills down into
the inbox and downloads the CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import Role
from inbox.services.accounts import get_or_create_team
from tests.services.test_reports import (  # noqa: F401 (fixtures)
    FR,
    admin,
    always_on,
    expected_attainment,
    generated,
)
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser
RANGE = "preset=custom&from=2026-01-12&to=2026-01-21&tz=UTC"


def test_supervisor_reads_filters_drills_down_and_exports(
    page: Page,
    live_server,
    make_user,
    generated,  # noqa: F811
    artifacts_dir,
):
    supervisor = make_user(Role.SUPERVISOR, name="Sam Supervisor", team="Social care")
    supervisor.teams.append(get_or_create_team("Billing"))
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, supervisor.email)
    page.goto(f"{live_server}/reports/?{RANGE}")
    expect(page.get_by_role("heading", name="SLA report")).to_be_visible()
    expect(page).to_have_title("SLA report · inbox")
    expect(page.locator("[data-subscribe]")).to_have_count(1)
    for chart in ("attainment", "histogram", "line", "heatmap"):
        expect(page.locator(f'svg[data-chart="{chart}"]').first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "reports-dashboard.png"))
    page.screenshot(path=str(artifacts_dir / "reports-dashboard-full.png"), full_page=True)

    card = page.locator('[data-metric="first_response"]')
    everyone = expected_attainment(generated, FR)
    expect(card.locator('[data-outcome="met"] strong')).to_have_text(str(everyone["met"]))
    decided = everyone["met"] + everyone["breached"]
    expect(card.locator("[data-unit]")).to_have_text(
        f"{everyone['met']} of {decided} first responses met"
    )

    # A filter changes the numbers.
    page.get_by_label("Team").select_option(label="Billing")
    page.get_by_role("button", name="Apply").click()
    billing = expected_attainment([s for s in generated if s.team == "Billing"], FR)
    expect(card.locator('[data-outcome="met"] strong')).to_have_text(str(billing["met"]))
    expect(card.locator('[data-outcome="breached"] strong')).to_have_text(str(billing["breached"]))

    # The breached number opens exactly those conversations in the inbox.
    card.locator('[data-outcome="breached"]').click()
    expect(page.locator("[data-drilldown-count]")).to_have_text(str(billing["breached"]))
    # The banner says what the number counts: conversations with such a cycle.
    expect(page.locator("[data-drilldown]")).to_contain_text(
        f"{billing['breached']} conversations with a first response breached, started from"
    )
    page.screenshot(path=str(artifacts_dir / "reports-drilldown.png"))
    page.go_back()

    with page.expect_download() as download:
        page.locator('[data-export="rows"]').click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == sum(1 for s in generated if s.team == "Billing")
    assert {r["team"] for r in rows} == {"Billing"}
