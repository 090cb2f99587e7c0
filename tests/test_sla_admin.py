"""The SLA admin pages (/admin/sla): admins only, calendars and policies with clear errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import AuditEvent, BusinessCalendar, Role, SlaPolicy, Visibility, WarnMode
from inbox.services.accounts import get_or_create_team
from tests.conftest import login

WEEK = {
    day: ""
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}


def calendar_form(**fields):
    return {
        "name": "London office",
        "timezone": "Europe/London",
        **WEEK,
        "monday": "09:00-12:00, 13:00-17:00",
        "friday": "9:00-12:00,13:00-16:30",
        "saturday": "22:00-02:00",
        "holidays": "2026-12-25 Christmas\n2026-12-26",
        "country": "gb",
        "subdivision": "eng",
        **fields,
    }


@pytest.fixture
def admin_client(client, make_user):
    login(client, make_user(Role.ADMIN))
    return client


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
@pytest.mark.parametrize(
    "path", ["/admin/sla/", "/admin/sla/calendars/new", "/admin/sla/policies/new"]
)
def test_sla_admin_pages_are_forbidden_to_agents_and_supervisors(client, make_user, role, path):
    login(client, make_user(role))
    assert client.get(path).status_code == 403
    if path != "/admin/sla/":
        assert client.post(path, data=calendar_form()).status_code == 403
    assert db.session.scalar(select(BusinessCalendar.id)) is None


def test_sla_admin_requires_sign_in(client):
    assert client.get("/admin/sla/").status_code == 302


def test_admin_creates_a_calendar_with_lunch_breaks_overnight_and_holidays(admin_client):
    response = admin_client.post("/admin/sla/calendars/new", data=calendar_form())
    assert response.status_code == 302
    calendar = db.session.scalar(select(BusinessCalendar))
    assert calendar.weekly["0"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert calendar.weekly["4"] == [["09:00", "12:00"], ["13:00", "16:30"]]
    assert calendar.weekly["5"] == [["22:00", "02:00"]]
    assert calendar.weekly["1"] == []
    assert calendar.holidays == ["2026-12-25", "2026-12-26"]
    assert (calendar.country, calendar.subdivision) == ("GB", "ENG")
    assert db.session.scalar(select(AuditEvent).filter_by(action="sla.calendar.save")) is not None
    page = admin_client.get("/admin/sla/").get_data(as_text=True)
    assert "London office" in page and "Mon 09:00–12:00, 13:00–17:00" in page
    # The edit form shows what was saved.
    edit = admin_client.get(f"/admin/sla/calendars/{calendar.id}").get_data(as_text=True)
    assert 'value="09:00-12:00, 13:00-17:00"' in edit


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"monday": "9-17"}, "is not like 09:00-17:00"),
        ({"monday": "25:00-26:00"}, "Times must be between 00:00 and 24:00 (25:00 is not a time)."),
        ({"monday": "09:60-17:00"}, "Times must be between 00:00 and 24:00 (09:60 is not a time)."),
        ({"monday": "24:00-06:00"}, "starts at 24:00: a day starts at 00:00."),
        ({"monday": "09:00-13:00, 12:00-17:00"}, "overlapping working intervals"),
        ({"timezone": "Mars/Olympus"}, "Unknown time zone"),
        ({"holidays": "christmas"}, "does not start with a date"),
        ({"country": "XX"}, "unknown holiday country"),
        ({"country": "", "subdivision": "ENG"}, "A subdivision needs a country"),
    ],
)
def test_invalid_calendar_is_refused_with_a_clear_error(admin_client, fields, message):
    response = admin_client.post("/admin/sla/calendars/new", data=calendar_form(**fields))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(BusinessCalendar.id)) is None


def test_a_day_can_end_at_24_00_which_is_stored_as_midnight(admin_client):
    response = admin_client.post(
        "/admin/sla/calendars/new", data=calendar_form(monday="17:00-24:00")
    )
    assert response.status_code == 302
    assert db.session.scalar(select(BusinessCalendar)).weekly["0"] == [["17:00", "00:00"]]


def test_always_open_calendar_needs_no_hours(admin_client):
    data = calendar_form(name="24/7", always_open="y")
    assert admin_client.post("/admin/sla/calendars/new", data=data).status_code == 302
    calendar = db.session.scalar(select(BusinessCalendar))
    assert calendar.always_open and calendar.weekly == {} and calendar.country is None


def test_admin_creates_and_edits_a_policy(admin_client):
    calendar = BusinessCalendar(name="Office", timezone="UTC", weekly={"0": [["09:00", "17:00"]]})
    billing = get_or_create_team("Billing support")
    db.session.add(calendar)
    db.session.commit()
    data = {
        "name": "Urgent VIP",
        "position": "5",
        "active": "y",
        "priorities": ["urgent", "high"],
        "platforms": ["x"],
        "visibility": "public",
        "team_id": "0",
        "tags": "refund, outage ,refund",
        "vip": "yes",
        "first_response_hours": "0",
        "first_response_minutes": "30",
        "resolution_hours": "8",
        "time_basis": "business",
        "calendar_id": str(calendar.id),
        "warn_mode": "minutes",
        "warn_value": "10",
        "count_echoes": "y",
        "at_warning-notify_assignee": "y",
        "at_warning-reassign_team": "0",
        "at_breach-notify_supervisors": "y",
        "at_breach-raise_priority": "y",
        "at_breach-reassign_team": str(billing.id),
        "at_breach-webhook": "https://hooks.example.com/sla",
    }
    assert admin_client.post("/admin/sla/policies/new", data=data).status_code == 302
    policy = db.session.scalar(select(SlaPolicy))
    assert policy.priorities == ["urgent", "high"] and policy.platforms == ["x"]
    assert policy.visibility is Visibility.PUBLIC and policy.vip is True
    assert policy.tags == ["outage", "refund"]
    assert policy.first_response_seconds == 1800
    assert policy.next_response_seconds is None
    assert policy.resolution_seconds == 8 * 3600
    assert policy.warn_mode is WarnMode.MINUTES and policy.warn_value == 10
    assert policy.warning_actions == [{"type": "notify", "to": ["assignee"]}]
    assert policy.breach_actions == [
        {"type": "notify", "to": ["supervisors"]},
        {"type": "raise_priority"},
        {"type": "reassign", "team_id": billing.id},
        {"type": "webhook", "url": "https://hooks.example.com/sla"},
    ]
    edit = admin_client.get(f"/admin/sla/policies/{policy.id}").get_data(as_text=True)
    assert 'value="30"' in edit and "https://hooks.example.com/sla" in edit
    data.update(name="Urgent VIP (edited)", first_response_minutes="45")
    assert admin_client.post(f"/admin/sla/policies/{policy.id}", data=data).status_code == 302
    db.session.expire_all()
    assert policy.name == "Urgent VIP (edited)" and policy.first_response_seconds == 2700
    audits = db.session.scalars(select(AuditEvent).filter_by(action="sla.policy.save")).all()
    assert audits[-1].before["first_response_seconds"] == 1800


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time_basis": "business", "calendar_id": "0"}, "Choose the calendar"),
        ({"first_response_hours": "0", "first_response_minutes": "0"}, "longer than 0"),
        ({"first_response_minutes": "75"}, "Number must be between 0 and 59"),
        ({"warn_mode": "percent", "warn_value": "150"}, "at most 100%"),
        ({"at_breach-webhook": "not a url"}, "Enter an http(s) URL"),
        ({"name": ""}, "This field is required"),
    ],
)
def test_invalid_policy_is_refused_with_a_clear_error(admin_client, fields, message):
    data = {
        "name": "P",
        "position": "1",
        "visibility": "any",
        "vip": "any",
        "team_id": "0",
        "time_basis": "calendar",
        "calendar_id": "0",
        "warn_mode": "percent",
        "warn_value": "75",
        "at_warning-reassign_team": "0",
        "at_breach-reassign_team": "0",
        **fields,
    }
    response = admin_client.post("/admin/sla/policies/new", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(SlaPolicy.id)) is None


def test_calendar_form_needs_its_csrf_token(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        client = app.test_client()
        login(client, make_user(Role.ADMIN))
        assert client.post("/admin/sla/calendars/new", data=calendar_form()).status_code == 400
        assert db.session.scalar(select(BusinessCalendar.id)) is None


def test_admin_page_links_to_sla_settings(admin_client):
    assert b'href="/admin/sla/"' in admin_client.get("/admin/").data
