"""Pooled connections are pinged only after sitting idle (inbox.db_pool)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from inbox.extensions import db
from tests.conftest import _using_postgres


def _backend_pid() -> int:
    pid = db.session.execute(text("select pg_backend_pid()")).scalar_one()
    db.session.remove()  # the connection goes back to the pool
    return pid


def _pings(monkeypatch) -> list[object]:
    pings: list[object] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_connection):
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings


@pytest.mark.parametrize(("idle_seconds", "pinged"), [(0, 1), (60, 0)])
def test_a_pooled_connection_is_pinged_only_when_it_sat_idle_longer_than_set(
    make_app, monkeypatch, idle_seconds, pinged
):
    app = make_app(INBOX_DB_PING_AFTER_IDLE=idle_seconds)
    with app.app_context():
        db.session.execute(text("select 1"))
        db.session.remove()
        pings = _pings(monkeypatch)  # the fresh connection above was not pinged
        db.session.execute(text("select 1"))
        db.session.remove()
        assert len(pings) == pinged


@pytest.mark.skipif(
    not _using_postgres(),
    reason="ends a PostgreSQL backend to drop the connection; `make test` runs there too",
)
def test_an_idle_connection_the_database_dropped_is_replaced_before_the_request_uses_it(
    make_app,
):
    app = make_app(INBOX_DB_PING_AFTER_IDLE=0)
    with app.app_context():
        dropped = _backend_pid()
        other = create_engine(db.engine.url)
        with other.connect() as connection:
            connection.execute(text("select pg_terminate_backend(:pid)"), {"pid": dropped})
        other.dispose()
        # The pool hands out its last returned connection first: the dead one, which the ping
        # finds dead and replaces, so the statement runs on a new backend.
        assert _backend_pid() != dropped
