"""The SQL statements a piece of app code sends, as the driver receives them (with their
parameters), for tests and benchmarks that check or EXPLAIN what really runs.

Imports: sqlalchemy, inbox.extensions (the app's db).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event

from inbox.extensions import db


def captured_statements(run: Callable[[], object]) -> list[tuple[str, object]]:
    """Call `run()` and return every (statement, parameters) it sent on the app's engine."""
    sent: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return sent
