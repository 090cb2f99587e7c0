"""The planner's view for the benchmark scripts: EXPLAIN ANALYZE (PostgreSQL) of the very
statement the app sends, and freshly loaded tables brought to the state autovacuum gives them.

Imports: inbox.extensions (the app's db), tests.support.statements.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from inbox.extensions import db
from tests.support.statements import captured_statements


def explain_sent(run: Callable[[], object], marker: str) -> list[str]:
    """Call `run()`, then EXPLAIN ANALYZE the first statement it sent that contains `marker`
    (in the current transaction, so the caller decides whether it is kept)."""
    sent = captured_statements(run)
    statement, parameters = next((s, p) for s, p in sent if marker in s)
    conn = db.session.connection()
    return [row[0] for row in conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters)]


def settle_tables() -> None:
    """What autovacuum does to freshly loaded tables, here at once rather than a minute or so
    later in the middle of a measurement: statistics for the planner and, on PostgreSQL, the
    visibility map (index-only reads) and a vacuumed table (a bulk load of a million rows
    otherwise gets vacuumed while the clients run, a core's worth of work). Commits first."""
    db.session.commit()
    if db.engine.dialect.name != "postgresql":
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
