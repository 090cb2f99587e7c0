"""EXPLAIN ANALYZE (PostgreSQL) of the very statement the app sends, for the benchmark
scripts' reports.

Imports: sqlalchemy, inbox.extensions (the app's db).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event

from inbox.extensions import db


def explain_sent(run: Callable[[], object], marker: str) -> list[str]:
    """Call `run()`, then EXPLAIN ANALYZE the first statement it sent that contains `marker`
    (in the current transaction, so the caller decides whether it is kept)."""
    sent: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    statement, parameters = next((s, p) for s, p in sent if marker in s)
    conn = db.session.connection()
    return [row[0] for row in conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters)]
