"""Error answers: friendly HTML pages for people, JSON for API clients, nothing internal leaked."""

from __future__ import annotations

from tests.conftest import login


def test_unknown_page_is_an_html_404(client, make_user):
    login(client, make_user())
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"Not found" in response.data


def test_api_errors_are_json(client):
    response = client.get("/api/v1/no-such-thing", headers={"Authorization": "Bearer x"})
    assert response.status_code in (401, 404)
    assert response.mimetype == "application/json"
    assert set(response.json["error"]) == {"code", "message"}


def test_clients_asking_for_json_get_json_errors(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_unexpected_errors_show_a_500_page_without_internals(app, client, make_user):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user())
    response = client.get("/boom")
    assert response.status_code == 500
    assert b"Something went wrong" in response.data
    assert b"secret internal detail" not in response.data


def test_oversized_bodies_are_refused_with_413(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1024)
    response = app.test_client().post("/login", data={"email": "x" * 4096, "password": "y"})
    assert response.status_code == 413
