"""EXPLAIN ANALYZE (PostgreSQL) of the very statement the app sends, for the benchmark
scripts' reports.

Imports: inbox.extensions (the app's db), tests.support.statements.
"""

from __future__ import annotations

from collections.abc import Callable

from inbox.extensions import db
from tests.support.statements import captured_statements


def explain_sent(run: Callable[[], object], marker: str) -> list[str]:
    """Call `run()`, then EXPLAIN ANALYZE the first statement it sent that contains `marker`
    (in the current transaction, so the caller decides whether it is kept)."""
    sent = captured_statements(run)
    statement, parameters = next((s, p) for s, p in sent if marker in s)
    conn = db.session.connection()
    return [row[0] for row in conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters)]
