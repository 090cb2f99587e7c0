"""The routing admin pages: create, edit, reorder and delete rules through the form, the dry-run
test panel, team auto-assignment settings, and who may do what: supervisors and admins run
routing, only admins set a team's helpdesk hand-off, agents see none of it."""

from __future__ import annotations

from sqlalchemy import select

from inbox.extensions import db
from inbox.models import AssignmentMode, AuditEvent, Conversation, Role, RoutingRule
from inbox.services.accounts import get_or_create_team
from tests import factories
from tests.conftest import login

# What a browser sends for an untouched form: every select has its first option.
BLANK = {
    "visibility": "any",
    "sentiment": "any",
    "vip": "any",
    "verified": "any",
    "business_hours": "any",
    "calendar_id": "0",
    "set_team": "0",
    "set_priority": "",
    "assign_to": "0",
    "sla_policy_id": "0",
    "test_limit": "200",
}


def form(**fields):
    return {**BLANK, **fields}


def post_team_settings(client, team, *, mode: str, timeout_minutes: int):
    """Submit `team`'s row of the auto-assignment table (its fields carry a prefix)."""
    prefix = f"team{team.id}-"
    return client.post(
        f"/admin/routing/teams/{team.id}",
        data={
            prefix + "assignment_mode": mode,
            prefix + "assignment_timeout_minutes": str(timeout_minutes),
            prefix + "calendar_id": "0",
        },
    )


def admin_client(client, make_user):
    login(client, make_user(Role.ADMIN))
    return client


def test_agents_reach_no_routing_page(client, make_user):
    team = get_or_create_team("Social care")
    db.session.commit()
    login(client, make_user(Role.AGENT))
    assert client.get("/admin/routing/").status_code == 403
    assert client.get("/admin/routing/rules/new").status_code == 403
    assert client.post("/admin/routing/rules/new", data=form(name="x")).status_code == 403
    assert client.post(f"/admin/routing/teams/{team.id}", data={}).status_code == 403
    assert db.session.scalar(select(RoutingRule.id)) is None


def test_a_supervisor_runs_routing_but_leaves_the_helpdesk_hand_off_to_admins(client, make_user):
    team = get_or_create_team("Social care")
    db.session.commit()
    supervisor = make_user(Role.SUPERVISOR)
    login(client, supervisor)
    page = client.get("/admin/routing/").get_data(as_text=True)
    assert "+ New rule" in page
    assert f'data-team="{team.id}"' in page
    assert "helpdesk-form" not in page and "is set up by an admin" in page
    assert ">Routing</a>" in client.get("/inbox").get_data(as_text=True)
    res = client.post("/admin/routing/rules/new", data=form(name="Spam words", mark_spam="y"))
    assert res.status_code == 302
    rule = db.session.scalar(select(RoutingRule))
    assert rule.name == "Spam words"
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "routing_rule.create"))
    assert audit.actor_id == supervisor.id
    res = post_team_settings(client, team, mode="round_robin", timeout_minutes=30)
    assert res.status_code == 302
    db.session.expire_all()
    assert team.assignment_mode is AssignmentMode.ROUND_ROBIN
    helpdesk = client.post(
        f"/admin/routing/teams/{team.id}/helpdesk",
        data={
            f"helpdesk{team.id}-url": "https://hd.example/in",
            f"helpdesk{team.id}-secret": "s" * 20,
        },
    )
    assert helpdesk.status_code == 403
    assert (
        client.get("/admin/").status_code == 403
    )  # people, channels, SLA policies and calendars: an admin's


def test_create_rule_from_the_form_and_list_it(client, make_user):
    admin_client(client, make_user)
    billing = get_or_create_team("Billing")
    db.session.commit()
    res = client.post(
        "/admin/routing/rules/new",
        data={
            **BLANK,
            "name": "Refunds",
            "active": "y",
            "stop": "y",
            "platforms": ["x", "instagram"],
            "visibility": "any",
            "text_contains": "refund, chargeback",
            "sentiment": "any",
            "vip": "any",
            "verified": "yes",
            "business_hours": "no",
            "calendar_id": "0",
            "followers_at_least": "500",
            "set_team": str(billing.id),
            "set_priority": "high",
            "add_tags": "money",
            "assign_to": "0",
            "sla_policy_id": "0",
            "auto_reply": "We got it.",
            "save": "1",
        },
    )
    assert res.status_code == 302
    rule = db.session.scalar(select(RoutingRule))
    assert rule.stop and rule.active
    assert rule.conditions == [
        {"type": "platform", "values": ["x", "instagram"]},
        {"type": "text_contains", "values": ["refund", "chargeback"]},
        {"type": "verified", "value": True},
        {"type": "followers_at_least", "value": 500},
        {"type": "business_hours", "value": False},
    ]
    assert rule.actions == [
        {"type": "set_team", "team_id": billing.id},
        {"type": "set_priority", "priority": "high"},
        {"type": "add_tags", "tags": ["money"]},
        {"type": "auto_reply", "text": "We got it."},
    ]
    page = client.get("/admin/routing/").get_data(as_text=True)
    assert "Refunds" in page and "Text contains any of: refund, chargeback" in page
    assert "Set team: Billing" in page and "Stop here" in page
    edit = client.get(f"/admin/routing/rules/{rule.id}").get_data(as_text=True)
    assert 'value="refund, chargeback"' in edit
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "routing_rule.create"))


def test_a_dangerous_regex_is_refused_with_a_message(client, make_user):
    admin_client(client, make_user)
    res = client.post(
        "/admin/routing/rules/new",
        data=form(name="Bad", text_regex="(a+)+$", mark_spam="y", save="1"),
    )
    assert res.status_code == 400
    assert "could take very long" in res.get_data(as_text=True)
    assert db.session.scalar(select(RoutingRule)) is None


def test_a_broken_regex_is_refused_in_words_keeping_re_detail(client, make_user):
    admin_client(client, make_user)
    res = client.post(
        "/admin/routing/rules/new",
        data=form(name="Bad", text_regex="(order", mark_spam="y", save="1"),
    )
    page = res.get_data(as_text=True)
    assert res.status_code == 400
    assert (
        "The pattern is not a valid regular expression: "
        "missing ), unterminated subpattern (at character 1)."
    ) in page
    assert "at position 0" not in page  # re's zero-based wording is not shown
    assert db.session.scalar(select(RoutingRule)) is None


def test_test_panel_lists_matches_without_saving_or_changing_anything(client, make_user):
    admin_client(client, make_user)
    hit = factories.conversation(text="I need a refund", name="Rita Refund")
    factories.conversation(text="Just a question", name="Quentin")
    res = client.post(
        "/admin/routing/rules/new",
        data=form(name="Try", text_contains="refund", mark_spam="y", test="1"),
    )
    page = res.get_data(as_text=True)
    assert res.status_code == 200
    assert "Rita Refund" in page and "Quentin" not in page
    assert "<strong>1</strong> matching conversation" in page
    assert db.session.scalar(select(RoutingRule)) is None
    db.session.expire_all()
    assert not db.session.get(Conversation, hit.id).is_spam


def test_a_rule_can_be_tested_before_it_has_a_name_but_not_saved(client, make_user):
    admin_client(client, make_user)
    factories.conversation(text="I need a refund", name="Rita Refund")
    tried = client.post(
        "/admin/routing/rules/new", data=form(name="", text_contains="refund", test="1")
    )
    assert tried.status_code == 200 and "Rita Refund" in tried.get_data(as_text=True)
    saved = client.post("/admin/routing/rules/new", data=form(name="", text_contains="refund"))
    assert saved.status_code == 400
    assert db.session.scalar(select(RoutingRule)) is None


def test_reorder_and_delete(client, make_user):
    admin_client(client, make_user)
    for name in ("one", "two"):
        client.post("/admin/routing/rules/new", data=form(name=name, mark_spam="y"))
    two = db.session.scalar(select(RoutingRule).where(RoutingRule.name == "two"))
    client.post(f"/admin/routing/rules/{two.id}/move", data={"direction": "up"})
    db.session.expire_all()
    names = [r.name for r in db.session.scalars(select(RoutingRule).order_by(RoutingRule.position))]
    assert names == ["two", "one"]
    client.post(f"/admin/routing/rules/{two.id}/delete")
    db.session.expire_all()
    assert [r.name for r in db.session.scalars(select(RoutingRule))] == ["one"]


def test_team_assignment_settings_are_saved_and_audited(client, make_user):
    admin_client(client, make_user)
    team = get_or_create_team("Social care")
    db.session.commit()
    res = post_team_settings(client, team, mode="least_loaded", timeout_minutes=45)
    assert res.status_code == 302
    db.session.expire_all()
    assert team.assignment_mode is AssignmentMode.LEAST_LOADED
    assert team.assignment_timeout_minutes == 45
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "team.assignment"))
    assert audit.after["assignment_mode"] == "least_loaded"
