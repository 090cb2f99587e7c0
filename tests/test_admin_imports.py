"""Admin › Import: an admin uploads a TWCS file and a real RQ worker imports it, the page and
its polled rows show the progress and outcome (the file's name escaped), a bad file is
refused on the page with nothing stored, the upload may be larger than other request bodies
but not larger than its own limit, and only admins reach any of it."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import Conversation, CsvImport, ImportState, Role
from inbox.services.accounts import get_or_create_team
from tests import factories
from tests.conftest import login, run_jobs


@pytest.fixture
def admin_client(client, make_user):
    login(client, make_user(Role.ADMIN, name="Ada Admin"))
    return client


def upload(client, data: bytes, filename: str = "history.csv", team: str = "0"):
    return client.post(
        "/admin/imports",
        data={"file": (io.BytesIO(data), filename), "team": team},
        content_type="multipart/form-data",
    )


def imports() -> list[CsvImport]:
    db.session.expire_all()
    return list(db.session.scalars(select(CsvImport).order_by(CsvImport.id)))


def test_an_uploaded_file_is_imported_by_the_worker_and_the_page_says_what_it_did(
    app, admin_client
):
    team = get_or_create_team("Social care")
    db.session.commit()
    answer = upload(admin_client, factories.twcs_file(7), team=str(team.id))
    assert answer.status_code == 302
    page = admin_client.get("/admin/imports").get_data(as_text=True)
    assert "is stored; a worker imports it now" in page and "Waiting for a worker" in page

    run_jobs(app)

    (done,) = imports()
    assert done.state is ImportState.DONE and done.team_id == team.id
    assert db.session.scalar(select(func.count(Conversation.id))) == 7
    row = admin_client.get(f"/admin/imports/{done.id}").get_data(as_text=True)
    assert 'data-state="done"' in row and "data-poll" not in row  # the page stops polling
    assert "7 conversations and 14 messages created from 14 rows" in row
    assert "Social care" in row


def test_a_running_import_s_row_shows_how_far_it_got_and_keeps_being_polled(app, admin_client):
    assert upload(admin_client, factories.twcs_file(3)).status_code == 302
    (running,) = imports()
    running.state, running.threads_done, running.threads_total = ImportState.RUNNING, 250, 1000
    db.session.commit()
    row = admin_client.get(f"/admin/imports/{running.id}").get_data(as_text=True)
    assert '<progress max="1000" value="250"' in row
    assert "250 of 1,000 conversations (25 %)" in row
    assert f'data-poll="/admin/imports/{running.id}"' in row


def test_a_file_of_another_format_is_refused_on_the_page_and_nothing_stored(admin_client):
    answer = upload(admin_client, b"name,email\nAda,ada@example.com\n", filename="people.csv")
    assert answer.status_code == 400
    assert "This is not a TWCS file: expected the TWCS header" in answer.get_data(as_text=True)
    assert imports() == []


def test_no_file_chosen_is_refused_with_a_field_message(admin_client):
    answer = admin_client.post("/admin/imports", data={"team": "0"})
    assert answer.status_code == 400
    assert "Choose a CSV file to import." in answer.get_data(as_text=True)


def test_a_forged_team_is_refused(admin_client):
    assert upload(admin_client, factories.twcs_file(1), team="999").status_code == 400
    assert imports() == []


def test_the_file_s_name_is_shown_escaped(admin_client):
    upload(admin_client, factories.twcs_file(1), filename="<img src=x onerror=alert(1)>.csv")
    page = admin_client.get("/admin/imports").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.csv" in page


def test_the_upload_may_exceed_the_body_limit_of_other_requests_but_not_its_own(app, admin_client):
    data = factories.twcs_file(400)  # ≈ 40 KB
    app.config["MAX_CONTENT_LENGTH"] = 10_000  # every other request's limit
    assert upload(admin_client, data).status_code == 302
    assert admin_client.post("/admin/canned", data={"title": "x" * 20_000}).status_code == 413

    app.config["INBOX_MAX_IMPORT_BYTES"] = 20_000
    refused = upload(admin_client, data)
    assert refused.status_code == 400
    assert "the limit is 20,000 bytes (0.02 MB)" in refused.get_data(as_text=True)
    assert upload(admin_client, data * 3).status_code == 413  # past the limit and the form's slack
    assert len(imports()) == 1


def test_a_failed_import_can_be_tried_again_from_the_page(app, admin_client):
    upload(admin_client, factories.twcs_file(2))
    (failed,) = imports()
    failed.state, failed.error = ImportState.FAILED, "The import stopped: ConnectionError."
    db.session.commit()
    page = admin_client.get("/admin/imports").get_data(as_text=True)
    assert "The import stopped: ConnectionError." in page and "Try again" in page

    assert admin_client.post(f"/admin/imports/{failed.id}/retry").status_code == 302
    run_jobs(app)
    (done,) = imports()
    assert done.state is ImportState.DONE and done.conversations_created == 2


def test_a_failed_import_s_file_can_be_discarded_from_the_page(admin_client):
    upload(admin_client, factories.twcs_file(2))
    (failed,) = imports()
    failed.state, failed.error = ImportState.FAILED, "The import stopped: ConnectionError."
    db.session.commit()
    assert admin_client.post(f"/admin/imports/{failed.id}/discard").status_code == 302
    (gone,) = imports()
    assert not gone.has_file
    page = admin_client.get("/admin/imports").get_data(as_text=True)
    assert "The file is deleted." in page and "Try again" not in page
    assert admin_client.post(f"/admin/imports/{failed.id}/explode").status_code == 404


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_only_admins_reach_the_import_page(client, make_user, role):
    login(client, make_user(role, name="Not An Admin"))
    assert client.get("/admin/imports").status_code == 403
    assert upload(client, factories.twcs_file(1)).status_code == 403
    assert client.post("/admin/imports/1/discard").status_code == 403
    assert imports() == []


@pytest.mark.parametrize("role", [None, Role.AGENT])
def test_only_an_admin_may_send_a_body_above_the_usual_limit(make_app, make_user, role):
    # With CSRF protection on, as in production, the form is read before any role check:
    # for anyone but an admin it is read under the usual limit, so a large body is refused.
    app = make_app(WTF_CSRF_ENABLED=True, MAX_CONTENT_LENGTH=10_000)
    client = app.test_client()
    if role is not None:
        login(client, make_user(role, name="Not An Admin"))
    assert upload(client, factories.twcs_file(400)).status_code == 413
    assert upload(client, factories.twcs_file(10)).status_code == 400  # read: no CSRF token
    assert imports() == []
