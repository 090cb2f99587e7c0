"""Migration guards: one head, and upgrading an empty database yields exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import create_engine

from inbox import create_app
from inbox.extensions import db
from tests.conftest import ROOT, app_overrides


def test_migrations_have_a_single_head():
    from alembic.config import Config

    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}"


def test_upgrade_on_an_empty_database_equals_the_models(fresh_database_url, redis_url):
    app = create_app(app_overrides(fresh_database_url, redis_url))
    with app.app_context():
        upgrade()
        engine = create_engine(fresh_database_url)
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                diff = compare_metadata(context, db.metadata)
        finally:
            engine.dispose()
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_suite_runs_on_the_database_it_was_asked_for(app):
    import os

    wanted = os.environ.get("INBOX_TEST_DB", "sqlite")
    assert db.engine.dialect.name == wanted
