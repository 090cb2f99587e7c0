"""Admin › Canned responses: a refused form comes back as typed, each error beside its field,
and nothing is saved."""

from __future__ import annotations

from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import CannedResponse, Role
from tests.conftest import login


def canned_count() -> int:
    return db.session.scalar(select(func.count(CannedResponse.id)))


def test_a_blank_title_is_refused_beside_the_field_keeping_the_text(client, make_user):
    login(client, make_user(Role.ADMIN))
    answer = client.post("/admin/canned", data={"title": "   ", "body": "Hi <b>there</b>"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert canned_count() == 0
    title_part = page.split('id="title"', 1)[1].split('<label for="body"', 1)[0]
    assert "This field is required." in title_part  # beside the title, not the text
    assert "Hi &lt;b&gt;there&lt;/b&gt;</textarea>" in page  # kept, escaped
    assert "Please correct the fields marked below." in page


def test_a_too_long_title_and_text_are_refused_with_their_limits(client, make_user):
    login(client, make_user(Role.ADMIN))
    answer = client.post("/admin/canned", data={"title": "T" * 121, "body": "b" * 5001})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert canned_count() == 0
    assert "Field cannot be longer than 120 characters." in page
    assert "Field cannot be longer than 5000 characters." in page
    assert 'value="' + "T" * 121 + '"' in page


def test_an_edit_with_a_blank_text_keeps_the_response_and_shows_the_error(client, make_user):
    login(client, make_user(Role.ADMIN))
    client.post("/admin/canned", data={"title": "Greeting", "body": "Hello"})
    item = db.session.scalar(select(CannedResponse))
    answer = client.post(f"/admin/canned/{item.id}", data={"title": "Welcome", "body": " "})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'value="Welcome"' in page
    assert "This field is required." in page.split('id="body"', 1)[1]
    db.session.expire_all()
    assert db.session.get(CannedResponse, item.id).body == "Hello"
