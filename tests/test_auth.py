"""Signing in and out, roles, CSRF, login throttling and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

from inbox.extensions import db
from inbox.models import ApiToken, AuditEvent, Role
from inbox.services.accounts import create_api_token, revoke_api_token, user_for_token
from inbox.timeutil import utcnow
from tests.conftest import PASSWORD, login


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post("/login", data={"email": email, "password": password, **extra})


def test_sign_in_then_sign_out(client, make_user):
    user = make_user(Role.AGENT, name="Alice Agent")
    response = sign_in(client, user.email.upper())  # email is case-insensitive
    assert response.status_code == 302
    assert response.location.endswith("/inbox")
    page = client.get("/inbox")
    assert page.status_code == 200
    assert b"Alice Agent" in page.data
    assert client.post("/logout").status_code == 302
    assert client.get("/inbox").status_code == 302  # back to the login page


def test_remember_me_lasts_two_weeks_not_a_year(client, make_user):
    user = make_user(Role.AGENT)
    response = sign_in(client, user.email, remember="y")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember"))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert timedelta(days=13) < expires - utcnow() <= timedelta(days=14)


def test_an_empty_sign_in_says_what_is_missing(client, make_user):
    user = make_user(Role.AGENT)
    both = client.post("/login", data={"email": "", "password": ""})
    assert both.status_code == 400 and "Enter your email and password." in both.text
    password = client.post("/login", data={"email": user.email, "password": ""})
    assert "Enter your password." in password.text
    assert client.get("/inbox").status_code == 302


def test_wrong_password_is_refused_with_a_message(client, make_user):
    user = make_user()
    response = sign_in(client, user.email, "wrong password")
    assert response.status_code == 401
    assert b"Wrong email or password" in response.data
    assert client.get("/inbox").status_code == 302


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client):
    response = sign_in(client, "nobody@example.com", "whatever")
    assert response.status_code == 401
    assert b"Wrong email or password" in response.data


def test_deactivated_user_cannot_sign_in(client, make_user):
    user = make_user()
    user.active = False
    db.session.commit()
    assert sign_in(client, user.email).status_code == 401


def test_sign_in_is_audited(client, make_user):
    user = make_user()
    sign_in(client, user.email)
    assert (
        db.session.query(AuditEvent).filter_by(action="user.login", actor_id=user.id).count() == 1
    )


def test_next_parameter_cannot_redirect_off_site(client, make_user):
    user = make_user()
    response = client.post(
        "/login?next=//evil.example/phish", data={"email": user.email, "password": PASSWORD}
    )
    assert response.location.endswith("/inbox")


def test_login_rate_limit_kicks_in(make_app, make_user):
    app = make_app(INBOX_LOGIN_RATE_LIMIT="3 per minute")
    with app.app_context():
        user = make_user()
        client = app.test_client()
        codes = [sign_in(client, user.email, "bad").status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        throttled = sign_in(client, user.email)  # even the right password is refused now
        assert throttled.status_code == 429
        assert client.get("/inbox").status_code == 302


def test_csrf_rejects_a_forged_login_form(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        client = app.test_client()
        response = sign_in(client, user.email)
        assert response.status_code == 400
        assert client.get("/inbox").status_code == 302


def test_csrf_token_from_the_page_is_accepted(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        client = app.test_client()
        page = client.get("/login").data.decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert sign_in(client, user.email, csrf_token=token).status_code == 302


def test_forged_logout_does_not_sign_out(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        client = app.test_client()
        login(client, user)
        client.post("/logout")  # no token: a cross-site form
        assert client.get("/inbox").status_code == 200


PAGES = {
    "/inbox": {Role.AGENT, Role.SUPERVISOR, Role.ADMIN},
    "/reports/": {Role.SUPERVISOR, Role.ADMIN},
    "/admin/": {Role.ADMIN},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(PAGES))
def test_each_role_sees_only_its_pages(client, make_user, role, path):
    login(client, make_user(role))
    response = client.get(path)
    assert response.status_code == (200 if role in PAGES[path] else 403)


@pytest.mark.parametrize("role", list(Role))
def test_navigation_shows_only_the_pages_of_the_role(client, make_user, role):
    login(client, make_user(role))
    html = client.get("/inbox").data.decode()
    assert ('href="/reports/"' in html) == (role in PAGES["/reports/"])
    assert ('href="/admin/"' in html) == (role in PAGES["/admin/"])


@pytest.mark.parametrize("path", list(PAGES))
def test_anonymous_visitors_are_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.location


def test_forbidden_page_is_a_friendly_html_page(client, make_user):
    login(client, make_user(Role.AGENT))
    response = client.get("/admin/")
    assert response.status_code == 403
    assert b"You don&#39;t have access" in response.data or b"have access" in response.data


# --- API tokens ----------------------------------------------------------------------------


def test_api_accepts_a_valid_token(client, make_user):
    user = make_user(Role.SUPERVISOR, name="Sam")
    token = create_api_token(user)
    db.session.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json["email"] == user.email
    assert response.json["role"] == "supervisor"
    stored = db.session.query(ApiToken).one()
    assert token not in stored.token_hash  # only a hash is kept
    assert stored.last_used_at is not None


def test_token_last_used_is_written_at_most_once_a_minute(app, make_user):
    # A token in constant use (an integration polling get next) must not cost a write each time.
    token = create_api_token(make_user())
    db.session.commit()
    first = utcnow()
    assert user_for_token(token, now=first) is not None
    db.session.commit()
    user_for_token(token, now=first + timedelta(seconds=59))
    assert not db.session.dirty
    user_for_token(token, now=first + timedelta(seconds=60))
    db.session.commit()
    assert db.session.query(ApiToken).one().last_used_at == first + timedelta(seconds=60)


def test_api_refuses_a_revoked_token(client, make_user):
    user = make_user()
    token = create_api_token(user)
    revoke_api_token(db.session.query(ApiToken).one(), actor=user)
    db.session.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_api_refuses_a_missing_token(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json == {
        "error": {"code": "unauthorized", "message": "Send 'Authorization: Bearer <token>'."}
    }


def test_api_refuses_a_made_up_token(client, make_user):
    make_user()
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer ibx_madeup"})
    assert response.status_code == 401


def test_api_refuses_the_token_of_a_deactivated_user(client, make_user):
    user = make_user()
    token = create_api_token(user)
    user.active = False
    db.session.commit()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_api_ignores_a_browser_session(client, make_user):
    login(client, make_user(Role.ADMIN))
    assert client.get("/api/v1/me").status_code == 401
