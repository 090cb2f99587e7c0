"""Queue listing order and its indexes: the SLA-first order (no deadline last, ties by id) is
kept across keyset pages, and the queue and get-next queries are read from their indexes in
order (no sort of the whole view), on the database under test."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg

from inbox.extensions import db
from inbox.models import NO_DEADLINE, Role, Status
from inbox.services import assignment, listing
from tests import factories
from tests.support.statements import captured_statements

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_sla_first_order_pages_through_deadlines_then_the_rest_by_id(app, make_user):
    agent = make_user(Role.AGENT)
    dues = [
        None,
        NOW + timedelta(hours=2),
        None,
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=2),
    ]
    made = []
    for due in dues:
        c = factories.conversation(team="Social care")
        c.sla_due_at = due
        made.append(c)
    db.session.commit()
    expected = [c.id for c in sorted(made, key=lambda c: (c.sla_due_at or NO_DEADLINE, c.id))]
    seen, cursor = [], None
    while True:
        page = listing.list_conversations(agent, view="open", cursor=cursor, limit=2)
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


def test_newest_first_pages_backwards_through_activity(app, make_user):
    agent = make_user(Role.AGENT)
    made = [
        factories.conversation(team="Social care", sent_at=NOW - timedelta(minutes=m))
        for m in (5, 1, 5, 9)
    ]
    expected = [c.id for c in sorted(made, key=lambda c: (c.last_message_at, c.id), reverse=True)]
    seen, cursor = [], None
    while True:
        page = listing.list_conversations(agent, view="open", sort="newest", cursor=cursor, limit=3)
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


def _plan(statement: str, parameters, index: str) -> str:
    """The plan of `statement` when `index` is preferred: tiny test tables would otherwise be
    scanned and sorted whatever the indexes. PostgreSQL: a sort or a scan is the last resort,
    and the plan is the generic one of a prepared statement, which sees no parameter values
    (psycopg prepares a statement run often); SQLite: INDEXED BY `index` (an error if the
    index cannot answer the query)."""
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
        numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
        conn.exec_driver_sql(f"PREPARE queue_query AS {numbered}")
        for setting in ("plan_cache_mode = force_generic_plan", "enable_seqscan = off"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        arguments = ", ".join(f"%({name})s" for name in names)
        # EXECUTE's arguments are written into the SQL (a utility statement takes no parameters).
        explain = psycopg.ClientCursor(conn.connection.dbapi_connection).mogrify(
            f"EXPLAIN EXECUTE queue_query({arguments})", parameters
        )
        rows = conn.exec_driver_sql(explain).all()
        conn.exec_driver_sql("DEALLOCATE queue_query")
    else:
        forced = statement.replace(
            "FROM conversations", f"FROM conversations INDEXED BY {index}", 1
        )
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + forced, parameters).all()
    return "\n".join(str(r[-1]) for r in rows)


def _queue_statement(statements) -> tuple[str, object]:
    return next((s, p) for s, p in statements if "ORDER BY" in s and "LIMIT" in s)


def _sorts_everything(plan: str) -> bool:
    # A Sort node; an Incremental Sort (of the rows that tie on the index's leading key) is
    # no sort of the whole view.
    return re.search(r"(^|->)\s*Sort\s+\(|TEMP B-TREE FOR ORDER BY", plan, re.M) is not None


def test_queue_views_read_their_partial_index_in_order(app, make_user):
    agent = make_user(Role.AGENT)
    for status in (Status.OPEN, Status.RESOLVED):
        factories.conversation(team="Social care").status = status
    factories.conversation(team="Social care").is_spam = True
    db.session.commit()
    views = {
        "open": ("ix_conversations_open_sla",),
        "resolved": ("ix_conversations_done_sla",),
        "spam": ("ix_conversations_spam_sla",),
    }
    if db.engine.dialect.name == "postgresql":
        # PostgreSQL also proves a view's narrower status list from an index's.
        views.update(
            mine=("ix_conversations_mine_sla",),
            unassigned=("ix_conversations_open_sla", "ix_conversations_claim"),
            pending=("ix_conversations_open_sla",),
        )
    for view, indexes in views.items():
        statements = captured_statements(lambda v=view: listing.list_conversations(agent, view=v))
        statement, parameters = _queue_statement(statements)
        plan = _plan(statement, parameters, indexes[0])
        assert any(index in plan for index in indexes), (view, plan)
        assert not _sorts_everything(plan), (view, plan)
        db.session.rollback()


def test_get_next_reads_the_claim_index_in_order(app, make_user):
    agent = make_user(Role.AGENT)
    factories.conversation(team="Social care")
    statements = captured_statements(lambda: assignment.claim_next(agent, now=NOW))
    db.session.rollback()
    statement, parameters = _queue_statement(statements)
    plan = _plan(statement, parameters, "ix_conversations_claim")
    assert "ix_conversations_claim" in plan, plan
    if db.engine.dialect.name == "postgresql":  # SQLite's index puts a NULL first_inbound_at first
        assert not _sorts_everything(plan), plan
