"""Routing and assignment in real headless Chromium: "Get next" (button and `g`) claims and
opens the most urgent conversation, the availability control in the top bar, the routing
admin page creating a rule and listing its matches in the test panel, a supervisor editing a
rule and testing it, and a route to support
showing its helpdesk case's status. Screenshots at 1366x768."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import Availability, Conversation, Role, RoutingRule, User
from inbox.services import helpdesk, routing
from inbox.services.accounts import get_or_create_team
from inbox.timeutil import utcnow
from tests import factories
from tests.conftest import run_jobs
from tests.support.helpdesk_receiver import HelpdeskReceiver
from tests.test_browser_inbox import open_inbox
from tests.test_browser_shell import sign_in

pytestmark = pytest.mark.browser


def test_get_next_claims_and_opens_the_most_urgent_conversation(
    live_server, page: Page, make_user, artifacts_dir
):
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    now = utcnow()
    factories.conversation(team="Social care", name="Newer Nick", sent_at=now - timedelta(hours=1))
    oldest = factories.conversation(
        team="Social care", name="Oldest Olga", sent_at=now - timedelta(hours=5)
    )
    due = factories.conversation(
        team="Social care", name="Deadline Dana", sent_at=now - timedelta(minutes=3)
    )
    due.sla_due_at = now + timedelta(minutes=20)
    db.session.commit()
    open_inbox(page, live_server, agent.email)
    page.get_by_role("button", name=re.compile("Get next")).click()
    # Beside the list it was pressed from ("All open"), which the page keeps showing.
    expect(page).to_have_url(re.compile(rf"/inbox/c/{due.id}\?view=open$"))
    expect(page.locator(".convo")).to_contain_text("Deadline Dana")
    page.screenshot(path=str(artifacts_dir / "routing-get-next.png"))
    page.locator("body").click()  # keyboard focus out of any field
    page.keyboard.press("g")
    expect(page).to_have_url(re.compile(rf"/inbox/c/{oldest.id}"))
    db.session.expire_all()
    assert db.session.get(Conversation, due.id).assignee_id == agent.id
    assert db.session.get(Conversation, oldest.id).assignee_id == agent.id


def test_availability_control_in_the_top_bar(live_server, page: Page, make_user, artifacts_dir):
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, agent.email)
    # The page's scripts are running (the live stream is up) before the control is used.
    expect(page.locator("body[data-live=on]")).to_have_count(1)
    control = page.get_by_label("Your availability")
    expect(control).to_have_value("offline")
    control.select_option("online")
    expect(page.locator("[data-toasts]")).to_contain_text("You are online.")
    expect(page.locator("[data-availability-dot]")).to_have_class(re.compile("avail-online"))
    page.screenshot(path=str(artifacts_dir / "routing-availability.png"))
    db.session.expire_all()
    assert db.session.get(User, agent.id).availability is Availability.ONLINE


def test_supervisor_sees_the_agent_list(live_server, page: Page, make_user, artifacts_dir):
    boss = make_user(Role.SUPERVISOR, name="Sam Super", email="sam@example.com")
    for name, state in (("Olive Online", "online"), ("Andy Away", "away"), ("Otto Off", "offline")):
        user = make_user(Role.AGENT, name=name)
        user.availability = Availability(state)
        user.last_seen_at = utcnow() - timedelta(minutes=7)
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, boss.email)
    page.get_by_role("link", name="Agents").click()
    expect(page.locator("[data-roster]")).to_contain_text("Olive Online")
    page.screenshot(path=str(artifacts_dir / "routing-agents.png"))


def test_admin_creates_a_rule_and_tests_it(live_server, page: Page, make_user, artifacts_dir):
    admin = make_user(Role.ADMIN, name="Ada Admin", email="ada@example.com")
    factories.conversation(team="Social care", text="Please refund my order", name="Rita Refund")
    factories.conversation(team="Social care", text="What are your hours?", name="Harry Hours")
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, admin.email)
    page.goto(live_server + "/admin/routing/")
    page.get_by_role("link", name="+ New rule").click()
    page.get_by_label("Name").fill("Refunds are urgent")
    page.get_by_label("Text contains any of (comma separated)").fill("refund, chargeback")
    page.get_by_label("Set priority").select_option("urgent")
    page.get_by_label("Add tags (comma separated)").fill("refund")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("[data-test-summary]")).to_contain_text("1 matching conversation")
    expect(page.locator("[data-test-results]")).to_contain_text("Rita Refund")
    expect(page.locator("[data-test-results]")).not_to_contain_text("Harry Hours")
    page.screenshot(path=str(artifacts_dir / "routing-rule-test.png"))
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("[data-rules]")).to_contain_text("Refunds are urgent")
    expect(page.locator("[data-rules]")).to_contain_text("Set priority: urgent")
    page.screenshot(path=str(artifacts_dir / "routing-rules.png"))
    assert db.session.scalar(select(RoutingRule.name)) == "Refunds are urgent"


def test_supervisor_edits_a_rule_and_tests_it(live_server, page: Page, make_user, artifacts_dir):
    supervisor = make_user(Role.SUPERVISOR, name="Sam Supervisor", email="sam@example.com")
    rule = routing.save_rule(
        None,
        name="Refunds",
        active=True,
        stop=False,
        conditions=[{"type": "text_contains", "values": ["refund"]}],
        actions_=[{"type": "set_priority", "priority": "high"}],
        actor=supervisor,
        now=utcnow(),
    )
    factories.conversation(team="Social care", text="Please refund my order", name="Rita Refund")
    factories.conversation(team="Social care", text="I want a chargeback", name="Chad Chargeback")
    db.session.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, supervisor.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Routing").click()
    page.locator("[data-rules]").get_by_role("link", name="Refunds").click()
    page.get_by_label("Text contains any of (comma separated)").fill("refund, chargeback")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("[data-test-summary]")).to_contain_text("2 matching conversations")
    expect(page.locator("[data-test-results]")).to_contain_text("Chad Chargeback")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("[data-rules]")).to_contain_text("chargeback")
    page.screenshot(path=str(artifacts_dir / "routing-rule-edited-by-supervisor.png"))
    db.session.expire_all()
    assert db.session.get(RoutingRule, rule.id).conditions == [
        {"type": "text_contains", "values": ["refund", "chargeback"]}
    ]


def test_routing_to_support_shows_the_helpdesk_case_status_on_the_conversation(
    app, live_server, page: Page, make_user, artifacts_dir
):
    secret = "whsec-browser-0123456789"
    receiver = HelpdeskReceiver(secret).start()
    try:
        boss = make_user(Role.SUPERVISOR, name="Sam Super", email="sam@example.com")
        support = get_or_create_team("Tech support")
        db.session.flush()
        helpdesk.configure_endpoint(
            support, url=receiver.url, secret=secret, actor=boss, now=utcnow()
        )
        c = factories.conversation(team="Social care", name="Crashing Carla")
        open_inbox(page, live_server, boss.email, f"/inbox/c/{c.id}")
        page.get_by_text("Route to support").click()
        route = page.locator(".route-form")
        route.get_by_label("Support team").select_option(label="Tech support")
        route.get_by_label("Handoff note").fill("Crash on <b>Android</b> 15")
        route.get_by_role("button", name="Route").click()
        expect(page.locator("[data-toasts]")).to_contain_text("Routed to Tech support")
        expect(page.locator("[data-delivery-state]")).to_have_text("pending")
        run_jobs(app)
        # The worker's live update reloads the open pane.
        expect(page.locator("[data-delivery-state]")).to_have_text("delivered")
        expect(page.locator("[data-helpdesk-delivery]")).to_contain_text("1 attempt")
        page.screenshot(path=str(artifacts_dir / "routing-helpdesk-case.png"))
        [request] = receiver.received
        assert request.signature_valid
        assert request.case["handoff_note"] == "Crash on <b>Android</b> 15"
    finally:
        receiver.stop()


def test_an_agent_routing_out_of_their_teams_sees_the_pane_close_not_an_error(
    live_server, page: Page, make_user
):
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    make_user(Role.AGENT, name="Bill Billing", team="Billing support")
    get_or_create_team("Tech support")  # nobody in it and no helpdesk: said in the form
    db.session.commit()
    c = factories.conversation(team="Social care", name="Rerouted Rita")
    factories.conversation(team="Social care", name="Staying Sam")
    open_inbox(page, live_server, agent.email, f"/inbox/c/{c.id}?view=open")
    page.get_by_text("Route to support").click()
    route = page.locator(".route-form")
    team = route.get_by_label("Support team")
    expect(team.locator("option", has_text="Tech support")).to_have_text(
        "Tech support (no active members, no helpdesk)"
    )
    expect(team.locator("option", has_text="Billing support")).to_have_text("Billing support")
    team.select_option(label="Billing support")
    route.get_by_label("Handoff note").fill("Double charge in March")
    route.get_by_role("button", name="Route").click()
    expect(page.locator("[data-closed]")).to_contain_text("Routed to Billing support.")
    expect(page.locator("[data-toasts]")).to_contain_text("it has left your queues")
    expect(page.locator(".toast.error")).to_have_count(0)
    expect(page.locator(".queue")).not_to_contain_text("Rerouted Rita")
    expect(page.locator(".queue")).to_contain_text("Staying Sam")
    assert "/inbox/c/" not in page.url
    db.session.expire_all()
    assert db.session.get(Conversation, c.id).team.name == "Billing support"


def test_routing_to_a_team_nobody_works_asks_first_and_a_no_routes_nothing(
    live_server, page: Page, make_user
):
    agent = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    get_or_create_team("Tech support")  # nobody in it and no helpdesk
    db.session.commit()
    c = factories.conversation(team="Social care", name="Waiting Wanda")
    open_inbox(page, live_server, agent.email, f"/inbox/c/{c.id}")
    page.get_by_text("Route to support").click()
    route = page.locator(".route-form")
    route.get_by_label("Support team").select_option(
        label="Tech support (no active members, no helpdesk)"
    )
    route.get_by_label("Handoff note").fill("Their app crashes")
    asked = []

    def answer(dialog, accept: bool):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    route.get_by_role("button", name="Route").click()
    expect(route.get_by_label("Handoff note")).to_have_value("Their app crashes")
    assert asked == [
        "Nobody works the Tech support queue and it has no helpdesk: route it there anyway?"
    ]
    db.session.expire_all()
    assert db.session.get(Conversation, c.id).team.name == "Social care"

    page.once("dialog", lambda d: answer(d, True))
    route.get_by_role("button", name="Route").click()
    expect(page.locator("[data-toasts]")).to_contain_text("Routed to Tech support")
    db.session.expire_all()
    assert db.session.get(Conversation, c.id).team.name == "Tech support"
