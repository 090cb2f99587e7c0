"""The application factory and its settings."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from inbox import create_app, encryption
from inbox.config import MIN_SECRET_KEY_LENGTH, ConfigError, engine_options, load_config
from inbox.extensions import db
from tests.conftest import TEST_SECRET_KEY


def test_missing_secret_key_outside_testing_is_a_clear_startup_error(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("INBOX_TESTING", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app()


def test_the_sample_secret_key_of_env_example_is_refused_at_startup(monkeypatch):
    sample = next(
        line.split("=", 1)[1]
        for line in (Path(__file__).parent.parent / ".env.example").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    )
    monkeypatch.setenv("SECRET_KEY", sample)
    with pytest.raises(ConfigError, match="placeholder"):
        create_app()


def test_a_short_secret_key_is_refused_at_startup(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "k" * (MIN_SECRET_KEY_LENGTH - 1))
    with pytest.raises(ConfigError, match="too short"):
        create_app({"INBOX_GC_FREEZE": False})
    monkeypatch.setenv("SECRET_KEY", "k" * MIN_SECRET_KEY_LENGTH)
    app = create_app({"INBOX_GC_FREEZE": False})
    assert app.config["SECRET_KEY"] == "k" * MIN_SECRET_KEY_LENGTH


def test_changing_a_short_secret_key_keeps_stored_tokens_readable_as_the_refusal_says(
    monkeypatch,
):
    old_key = "short-old-key"
    stored = encryption.encrypt({"SECRET_KEY": old_key}, "page-access-token")
    monkeypatch.setenv("SECRET_KEY", old_key)
    with pytest.raises(ConfigError, match=r"python -m inbox.encryption"):
        create_app({"INBOX_GC_FREEZE": False})
    printed = subprocess.run(
        [sys.executable, "-m", "inbox.encryption"],
        env={**os.environ, "SECRET_KEY": old_key},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.strip()
    new_config = {"SECRET_KEY": TEST_SECRET_KEY, "INBOX_ENCRYPTION_KEY": printed}
    assert encryption.decrypt(new_config, stored) == "page-access-token"


def test_missing_secret_key_is_allowed_when_testing(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    app = create_app({"TESTING": True})
    assert app.testing


def test_overrides_win_over_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite:///override.db"})
    assert app.config["SECRET_KEY"] == TEST_SECRET_KEY
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///override.db"


def test_a_serving_app_freezes_what_it_built_out_of_the_collectors_reach():
    gc.unfreeze()  # what an earlier test's app froze
    try:
        create_app({"TESTING": True})
        assert gc.get_freeze_count() == 0
        create_app({"SECRET_KEY": TEST_SECRET_KEY, "INBOX_GC_FREEZE": False})
        assert gc.get_freeze_count() == 0
        create_app({"SECRET_KEY": TEST_SECRET_KEY})
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_postgres_urls_are_pinned_to_psycopg3():
    config = load_config({"DATABASE_URL": "postgres://u@h/db"}, "/tmp")
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_malformed_boolean_setting_names_the_variable():
    with pytest.raises(ConfigError, match="INBOX_SECURE_COOKIES"):
        load_config({"INBOX_SECURE_COOKIES": "maybe"}, "/tmp")


def test_production_cookies_are_secure_httponly_and_samesite():
    config = load_config({}, "/tmp")
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["REMEMBER_COOKIE_SECURE"] is True


def test_importing_the_package_has_no_side_effects():
    # With no SECRET_KEY the factory refuses to start, so a clean import proves nothing ran.
    code = "import inbox, inbox.models, inbox.views, inbox.jobs, worker; print('ok')"
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="."
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "cookie_session"),
    [("/webhooks/x", False), ("/api/v1/me", False), ("/login", True), ("/inbox", True)],
)
def test_machine_requests_open_no_cookie_session(app, path, cookie_session):
    from flask import session
    from flask.sessions import NullSession

    with app.test_request_context(path):
        assert isinstance(session, NullSession) is not cookie_session


def test_each_web_process_keeps_a_database_connection_per_readme_gunicorn_thread(make_app):
    """With fewer pooled connections than request threads, the threads beyond the pool open and
    close a connection per request (a PostgreSQL backend forked each time: seen as ~200 new
    backends in 40 s of get next). The pool follows README's deployment."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    threads = int(re.search(r"gunicorn -k gthread --threads (\d+)", readme).group(1))
    postgresql = {"DATABASE_URL": "postgresql://db/inbox"}
    assert engine_options(load_config(postgresql, ""))["pool_size"] == threads
    smaller = load_config({**postgresql, "INBOX_DB_POOL_SIZE": "4"}, "")
    assert engine_options(smaller)["pool_size"] == 4
    assert "pool_size" not in engine_options(load_config({}, ""))  # SQLite: its own pool
    app = make_app()
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            assert db.engine.pool.size() == threads


def test_an_in_memory_sqlite_database_still_starts():
    # SQLAlchemy's pool for an in-memory SQLite database takes no size.
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        assert db.session.execute(text("select 1")).scalar() == 1


def test_a_database_pool_of_zero_is_refused_at_startup():
    with pytest.raises(ConfigError, match="INBOX_DB_POOL_SIZE"):
        create_app({"TESTING": True, "INBOX_DB_POOL_SIZE": 0})
