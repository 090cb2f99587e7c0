"""When a pooled database connection is checked before use: only after it has sat idle.

SQLAlchemy's `pool_pre_ping` pings on every checkout, a round trip per request: under get
next's load that ping and its wake-ups were a tenth of a web process's time
(docs/benchmarks.md). A connection that was in use a moment ago was alive a moment ago; one
that sat idle in the pool longer than `INBOX_DB_PING_AFTER_IDLE` seconds (the database
restarted, a firewall dropped it overnight) is pinged, and a dead one is replaced before the
request sees it, and with it every connection the pool held as long (the database is likely
to have dropped them all), as `pool_pre_ping` does. A connection that dies while in constant
use fails the statement it was running, as one in flight would with any ping; SQLAlchemy then
discards the pool's older connections the same way, so a restart costs each process at most
the requests in flight.
The pool is last in, first out, so that under light load one connection stays warm and the
rest idle (and get pinged) instead of every one taking turns.
Imports: third-party only.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

_RETURNED_AT = "inbox.returned_at"  # in each connection's ConnectionRecord.info


def ping_after_idle(engine: Engine, seconds: float) -> None:
    """Ping `engine`'s connections on checkout when they were returned to the pool more than
    `seconds` ago (a fresh connection is not pinged). A ping that finds the connection gone
    raises InvalidatePoolError: the pool replaces it and its older siblings and tries again.
    Any other error is the database's answer, not a dead connection: it goes to the caller."""

    @event.listens_for(engine, "checkin")
    def returned(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at <= seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            raise exc.InvalidatePoolError(f"an idle pooled connection was gone: {error}") from error
