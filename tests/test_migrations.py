"""Migration guards: one head, and upgrading an empty database yields exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from inbox import create_app
from inbox.extensions import db
from inbox.models.base import include_object_for
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
                context = MigrationContext.configure(
                    conn,
                    opts={
                        "compare_type": True,
                        "include_object": include_object_for(conn.dialect.name),
                    },
                )
                diff = compare_metadata(context, db.metadata)
        finally:
            engine.dispose()
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_suite_runs_on_the_database_it_was_asked_for(app):
    import os

    wanted = os.environ.get("INBOX_TEST_DB", "sqlite")
    assert db.engine.dialect.name == wanted


def _index_definitions(url: str) -> dict[str, str]:
    """Every index's (and, on PostgreSQL, every extended statistics object's) definition, as
    the database itself writes it."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                rows = conn.execute(
                    text(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                        " UNION ALL"
                        " SELECT stxname, pg_get_statisticsobjdef(oid) FROM pg_statistic_ext"
                    )
                ).all()
            else:
                rows = conn.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master"
                        " WHERE type = 'index' AND sql IS NOT NULL"
                    )
                ).all()
            return {
                name: " ".join(definition.split())
                for name, definition in rows
                if not name.startswith("alembic_version")  # Alembic's own table
            }
    finally:
        engine.dispose()


def test_expression_and_partial_indexes_of_the_migrations_equal_the_models(
    app, database_url, fresh_database_url, redis_url
):
    """Alembic compares neither a partial index's WHERE nor, on SQLite, an expression index
    (nor statistics objects): the database's own definitions after `upgrade` must equal those
    `create_all` writes (the queue's indexes are only used when their expressions match the
    queries exactly)."""
    migrated = create_app(app_overrides(fresh_database_url, redis_url))
    with migrated.app_context():
        upgrade()
        db.engine.dispose()
    from_models = _index_definitions(database_url)
    assert "ix_conversations_claim" in from_models
    assert _index_definitions(fresh_database_url) == from_models
