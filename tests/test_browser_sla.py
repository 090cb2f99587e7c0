"""In real headless Chromium: the SLA timeline explains a clock, and an admin sets up a calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from inbox.extensions import db
from inbox.models import Direction, Kind, Platform, Role, SlaPolicy
from inbox.services import sla
from inbox.services.channels import add_channel
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from tests import factories
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 12, hour, minute, tzinfo=UTC)  # a Monday


@pytest.fixture
def conversation(app):
    office = factories.office_calendar()
    db.session.add_all(
        [
            office,
            SlaPolicy(
                name="Default",
                first_response_seconds=7200,
                next_response_seconds=4 * 3600,
                calendar=office,
            ),
        ]
    )
    account, _ = add_channel(Platform.X, "1", name="@brand")
    who = resolve_identity(Profile(Platform.X, "42", display_name="<b>Maria</b>"))
    conversation, _ = get_or_create_conversation(
        account, "dm:42", kind=Kind.DM, is_public=False, contact=who.contact
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        text="hi",
        sent_at=at(11, 12),
        author_identity=who,
        external_id="in1",
        now=at(11, 12),
    )
    add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text="hello",
        sent_at=at(13, 40),
        external_id="out1",
        now=at(13, 40),
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        text="still broken",
        sent_at=at(14),
        author_identity=who,
        external_id="in2",
        now=at(14),
    )
    sla.sweep(now=at(23))
    db.session.commit()
    return conversation


def test_agent_reads_why_a_clock_was_met_or_breached(
    page: Page, live_server, make_user, conversation, artifacts_dir
):
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, make_user(Role.AGENT).email)
    page.goto(f"{live_server}/conversations/{conversation.id}/sla")
    first = page.locator('.sla-clock[data-metric="first_response"]')
    expect(first.locator(".sla-summary")).to_have_text(
        "1h 28m business time against a 2h target: met"
    )
    expect(first.locator(".sla-line")).to_contain_text("met Mon 12 Jan 13:40")
    # The lunch break is folded away under a one-line count, listed once it is opened.
    gaps = first.locator(".sla-gaps")
    expect(gaps.locator("summary")).to_have_text("1 stretch not counted: breaks")
    expect(gaps.locator("li")).to_be_hidden()
    gaps.locator("summary").click()
    expect(gaps.locator("li")).to_have_text(
        "Mon 12 Jan 12:00–13:00 (break, outside business hours)"
    )
    nxt = page.locator('.sla-clock[data-metric="next_response"]')
    # Mon 14:00–17:00 is 3h, Tue 09:00–10:00 the last hour: due Tue 10:00, long passed.
    expect(nxt.locator(".sla-outcome")).to_have_text("breached")
    expect(nxt.locator(".sla-line")).to_contain_text("due Tue 13 Jan 10:00")
    expect(page.locator("h1 .sla-badge")).to_have_attribute("data-sla-state", "breached")
    expect(page.locator("h1 .sla-badge")).to_contain_text("over")
    expect(page.locator("p.muted.small").first).to_contain_text("<b>Maria</b>")
    page.screenshot(path=str(artifacts_dir / "sla-timeline.png"), full_page=True)


def test_the_clocks_fit_the_conversations_side_panel(
    page: Page, live_server, make_user, conversation
):
    # A long zone name beside a long label once pushed the cards out of the 236 px panel, which
    # then scrolled sideways and cut every line off at its right edge.
    conversation.sla_clocks[0].policy.calendar.timezone = "America/Argentina/Buenos_Aires"
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, make_user(Role.AGENT).email)
    page.goto(f"{live_server}/inbox/c/{conversation.id}")
    panel = page.locator(".contact-panel")
    expect(panel.locator('.sla-clock[data-metric="next_response"]')).to_contain_text(
        "America/Argentina/Buenos_Aires"
    )
    widths = panel.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], f"the side panel scrolls sideways: {widths}"


def test_the_side_panel_shows_each_clock_s_result_before_its_folded_stretches(
    page: Page, live_server, make_user, conversation, artifacts_dir
):
    # The first next-response cycle is left open for days (its nights and lunches once ran as a
    # wall of "not counted …" text above the result in the narrow column), then a second opens.
    add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text="fixed now?",
        sent_at=datetime(2026, 1, 15, 10, tzinfo=UTC),
        external_id="out2",
        now=datetime(2026, 1, 15, 10, tzinfo=UTC),
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        text="no",
        sent_at=datetime(2026, 1, 15, 11, tzinfo=UTC),
        author_identity=conversation.contact.identities[0],
        external_id="in3",
        now=datetime(2026, 1, 15, 11, tzinfo=UTC),
    )
    sla.sweep(now=datetime(2026, 1, 16, 15, tzinfo=UTC))
    db.session.commit()
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_server, make_user(Role.AGENT).email)
    page.goto(f"{live_server}/inbox/c/{conversation.id}")
    clocks = page.locator(".contact-panel .sla-clock")
    expect(clocks).to_have_count(4)  # first response, two next-response cycles, resolution
    for card in clocks.all():
        # The result and its deadline come straight after the heading, the stretches after.
        order = card.evaluate("e => [...e.children].map(c => c.classList[0])")
        assert order[:4] == ["sla-clock-head", "sla-summary", "sla-line", "sla-gaps"], order
        expect(card.locator(".sla-gaps li").first).to_be_hidden()
    first_cycle = clocks.nth(1)
    expect(first_cycle.locator(".sla-summary")).to_have_text(
        "18h business time against a 4h target: breached (2d over)"
    )
    expect(first_cycle.locator(".sla-line")).to_have_text(
        "stopped Thu 15 Jan 10:00 · due Tue 13 Jan 10:00 · started Mon 12 Jan 14:00"
    )
    gaps = first_cycle.locator(".sla-gaps")
    expect(gaps.locator("summary")).to_have_text(
        "5 stretches not counted: breaks, outside business hours"
    )
    gaps.locator("summary").click()
    expect(gaps.locator("li")).to_have_count(5)
    expect(gaps.locator("li").first).to_have_text(
        "Mon 12 Jan 17:00–Tue 13 Jan 09:00 (outside business hours)"
    )
    widths = page.locator(".contact-panel").evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], f"the side panel scrolls sideways: {widths}"
    page.screenshot(path=str(artifacts_dir / "sla-side-panel.png"), full_page=True)


def test_admin_creates_a_business_calendar_in_the_browser(
    page: Page, live_server, make_user, artifacts_dir
):
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, make_user(Role.ADMIN).email)
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="SLA policies and business calendars").click()
    page.get_by_role("link", name="+ New calendar").click()
    page.get_by_label("Name").fill("Support hours")
    page.get_by_label("Time zone").fill("Europe/London")
    page.get_by_label("Monday").fill("09:00-12:00, 13:00-17:00")
    page.get_by_label("Tuesday").fill("09:00-13:00, 12:00-17:00")  # overlaps: refused
    page.get_by_role("button", name="Save calendar").click()
    expect(page.locator(".flash-error")).to_contain_text("overlapping working intervals")
    page.screenshot(path=str(artifacts_dir / "sla-calendar-error.png"), full_page=True)
    page.get_by_label("Tuesday").fill("09:00-17:00")
    page.get_by_role("button", name="Save calendar").click()
    row = page.locator("tr[data-calendar]")
    expect(row).to_contain_text("Support hours")
    expect(row).to_contain_text("Mon 09:00–12:00, 13:00–17:00")
    page.get_by_role("link", name="+ New policy").click()
    page.screenshot(path=str(artifacts_dir / "sla-policy-form.png"), full_page=True)
    page.get_by_label("Name").fill("Default")
    page.locator("#first_response_hours").fill("2")
    page.get_by_label("Business calendar").select_option(label="Support hours")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("tr[data-policy]")).to_contain_text("2h")
    page.screenshot(path=str(artifacts_dir / "sla-admin.png"), full_page=True)
