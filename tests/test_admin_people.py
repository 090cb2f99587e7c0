"""Admin › People: an admin adds someone (their password shown once, and it signs them in),
changes a person's role and teams, deactivates and reactivates them, resets a password; every
change is audited; admins cannot lock themselves out; other roles cannot reach the page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import AuditEvent, Role, User
from inbox.services.accounts import authenticate, get_or_create_team
from tests.conftest import PASSWORD, login


@pytest.fixture
def admin(make_user, client):
    user = make_user(Role.ADMIN, name="Ada Admin", email="ada@example.com")
    login(client, user)
    return user


def shown_password(html: str) -> str:
    return re.search(r"<code data-password>([^<]+)</code>", html).group(1)


def person(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def test_an_admin_adds_someone_whose_shown_password_signs_them_in(client, admin):
    billing = get_or_create_team("Billing support")
    db.session.commit()
    page = client.post(
        "/admin/people",
        data={
            "name": "Nia New",
            "email": "Nia@Example.com",
            "role": "agent",
            "teams": [billing.id],
        },
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Nia New" in html and "not shown again" in html
    assert page.headers["Cache-Control"] == "no-store"  # the browser keeps no copy of it
    password = shown_password(html)
    nia = person("nia@example.com")
    assert nia.role is Role.AGENT and [t.name for t in nia.teams] == ["Billing support"]
    assert authenticate("nia@example.com", password) == nia
    again = client.get("/admin/people")
    assert password not in again.get_data(as_text=True)
    assert "no-store" not in again.headers.get("Cache-Control", "")
    audit = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "user.create", AuditEvent.target_id == nia.id)
    )
    assert audit.actor_id == admin.id


def test_adding_someone_twice_or_without_an_email_is_refused(client, admin, make_user):
    make_user(Role.AGENT, email="taken@example.com")
    twice = client.post(
        "/admin/people", data={"name": "Again", "email": "taken@example.com", "role": "agent"}
    )
    assert twice.status_code == 409 and "already exists" in twice.get_data(as_text=True)
    bare = client.post("/admin/people", data={"name": "No mail", "email": "", "role": "agent"})
    assert bare.status_code == 400
    assert person("") is None


def test_role_teams_and_access_change_and_are_audited(client, admin, make_user):
    bob = make_user(Role.AGENT, name="Bob", email="bob@example.com")
    billing = get_or_create_team("Billing support")
    db.session.commit()
    client.post(
        f"/admin/people/{bob.id}", data={"role": "supervisor", "teams": [billing.id]}
    )  # "active" unticked: deactivated
    bob = person("bob@example.com")
    assert bob.role is Role.SUPERVISOR and [t.name for t in bob.teams] == ["Billing support"]
    assert bob.active is False
    assert authenticate("bob@example.com", PASSWORD) is None
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.update"))
    assert audit.before["role"] == "agent" and audit.after == {
        "role": "supervisor",
        "teams": ["Billing support"],
        "active": False,
    }
    client.post(f"/admin/people/{bob.id}", data={"role": "supervisor", "active": "y"})
    assert person("bob@example.com").active is True


def test_an_admin_cannot_demote_or_deactivate_themselves(client, admin):
    page = client.post(
        f"/admin/people/{admin.id}", data={"role": "agent", "active": "y"}, follow_redirects=True
    )
    assert "cannot remove your own admin role" in page.get_data(as_text=True)
    assert person("ada@example.com").role is Role.ADMIN


def test_a_reset_password_replaces_the_old_one(client, admin, make_user):
    bob = make_user(Role.AGENT, email="bob@example.com")
    page = client.post(f"/admin/people/{bob.id}/password")
    password = shown_password(page.get_data(as_text=True))
    assert page.headers["Cache-Control"] == "no-store"
    assert authenticate("bob@example.com", password) is not None
    assert authenticate("bob@example.com", PASSWORD) is None
    reset = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.password_reset"))
    assert (reset.actor_id, reset.target_id) == (admin.id, bob.id)
    assert password not in str(reset.before) + str(reset.after)  # audited, never recorded


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_only_admins_reach_the_people_page(client, make_user, role):
    login(client, make_user(role))
    assert client.get("/admin/people").status_code == 403
    target = make_user(Role.AGENT)
    answer = client.post(f"/admin/people/{target.id}", data={"role": "admin", "active": "y"})
    assert answer.status_code == 403
    assert person(target.email).role is Role.AGENT


def test_an_admin_makes_an_api_token_for_someone_shown_once_and_revokes_it(
    client, admin, make_user
):
    bot = make_user(Role.AGENT, name="Helpdesk bot", email="bot@example.com")
    page = client.post(f"/admin/people/{bot.id}/tokens", data={"name": "Helpdesk"})
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    token = re.search(r"<code data-token>([^<]+)</code>", html).group(1)
    api = client.application.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=headers).json["email"] == "bot@example.com"
    assert token not in client.get("/admin/people").get_data(as_text=True)
    made = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.create"))
    assert made.actor_id == admin.id and made.target_id == bot.id
    [stored] = person("bot@example.com").api_tokens
    client.post(f"/admin/tokens/{stored.id}/revoke")
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def test_a_reset_password_signs_the_person_out_of_every_browser(app, client, admin, make_user):
    bob = make_user(Role.AGENT, email="bob@example.com")
    bobs_browser = app.test_client()
    login(bobs_browser, bob)
    # Each browser's requests in an app context of their own: Flask-Login keeps the signed-in
    # user in `g`, which the test's app context would otherwise share between the two.
    with app.app_context():
        assert bobs_browser.get("/inbox").status_code == 200
    assert client.post(f"/admin/people/{bob.id}/password").status_code == 200
    with app.app_context():
        assert bobs_browser.get("/inbox").status_code == 302  # back to the sign-in page
    assert client.get("/admin/people").status_code == 200  # the admin's own session goes on


def test_resetting_ones_own_password_keeps_a_browser_without_remember_me_without_it(app, make_user):
    ada = make_user(Role.ADMIN, email="ada@example.com")
    browser = app.test_client()
    with app.app_context():
        browser.post("/login", data={"email": ada.email, "password": PASSWORD})
    with app.app_context():
        reset = browser.post(f"/admin/people/{ada.id}/password")
    assert reset.status_code == 200
    assert not [c for c in reset.headers.getlist("Set-Cookie") if c.startswith("remember")]
    with app.app_context():
        assert browser.get("/admin/people").status_code == 200


def test_an_admin_resetting_their_own_password_stays_signed_in_here_only(app, make_user):
    ada = make_user(Role.ADMIN, email="ada@example.com")
    here, elsewhere = app.test_client(), app.test_client()
    with app.app_context():
        here.post("/login", data={"email": ada.email, "password": PASSWORD, "remember": "y"})
    login(elsewhere, ada)
    with app.app_context():
        assert here.post(f"/admin/people/{ada.id}/password").status_code == 200
    with app.app_context():
        assert here.get("/admin/people").status_code == 200
    with app.app_context():
        assert elsewhere.get("/admin/people").status_code == 302
    # The browser closed: its renewed remember-me cookie alone signs it back in.
    here.delete_cookie(app.config["SESSION_COOKIE_NAME"])
    with app.app_context():
        assert here.get("/admin/people").status_code == 200


@pytest.mark.parametrize("fingerprint", ["", ":0000000000000000", ":\u00e9t\u00e9"])
def test_a_session_without_the_password_fingerprint_signs_nobody_in(app, make_user, fingerprint):
    browser = app.test_client()
    with browser.session_transaction() as session:
        session["_user_id"] = f"{make_user(Role.AGENT).id}{fingerprint}"
    with app.app_context():
        assert browser.get("/inbox").status_code == 302
