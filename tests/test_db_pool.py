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
        pings = _pings(monkeypatch)
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
        _end_backends([dropped])
        # The pool hands out its last returned connection first: the dead one, which the ping
        # finds dead and replaces, so the statement runs on a new backend.
        assert _backend_pid() != dropped


def _end_backends(pids: list[int]) -> None:
    other = create_engine(db.engine.url)
    with other.connect() as connection:
        # Waits (up to 5 s) until each backend has gone, so the pool's sockets are closed.
        ended = text("select pg_terminate_backend(:pid, 5000)")
        assert all(connection.execute(ended, {"pid": pid}).scalar_one() for pid in pids)
    other.dispose()


@pytest.mark.skipif(
    not _using_postgres(),
    reason="ends PostgreSQL backends to drop the connections; `make test` runs there too",
)
def test_a_dead_idle_connection_retires_the_pools_other_connections_as_old(make_app, monkeypatch):
    """A restart drops every connection: the first failed ping lets go of the pool's older
    ones too, so the next request does not ping a dead connection again (as pool_pre_ping)."""
    app = make_app(INBOX_DB_PING_AFTER_IDLE=0)
    with app.app_context():
        held = [db.engine.connect() for _ in range(2)]
        dropped = [c.execute(text("select pg_backend_pid()")).scalar_one() for c in held]
        for connection in held:
            connection.close()
        _end_backends(dropped)
        pings = _pings(monkeypatch)
        held = [db.engine.connect() for _ in range(2)]
        now = [c.execute(text("select pg_backend_pid()")).scalar_one() for c in held]
        for connection in held:
            connection.close()
        assert not set(now) & set(dropped)
        assert len(pings) == 1
