"""Queue listing order and its indexes: the SLA-first order (no deadline last, ties by id) is
kept across keyset pages, and the queue and get-next queries are read from their indexes in
order (no sort of the whole view), on the database under test."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text

from inbox.extensions import db
from inbox.models import NO_DEADLINE, Kind, Priority, Role, SlaMetric, Status
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


def _plan(statement: str, parameters, index: str, *, sorts: bool = False) -> str:
    """The plan of `statement` when `index` is preferred: tiny test tables would otherwise be
    scanned and sorted whatever the indexes. PostgreSQL: a scan, and unless `sorts` a sort, is
    the last resort,
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
        if not sorts:
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


def test_search_takes_wildcards_quotes_and_the_escape_character_literally(app, make_user):
    agent = make_user(Role.AGENT)
    texts = ["order 50% off", "order 50x off", "a_b here", "axb here", "O'Brien writes", "a/b"]
    made = {t: factories.conversation(team="Social care", text=t).id for t in texts}
    found = lambda q: {  # noqa: E731
        c.id for c in listing.list_conversations(agent, filters=listing.Filters(q=q)).items
    }
    assert found("50%") == {made["order 50% off"]}
    assert found("a_b") == {made["a_b here"]}
    assert found("o'brien") == {made["O'Brien writes"]}
    assert found("a/b") == {made["a/b"]}
    assert found("/%") == set()


def test_text_search_reads_the_trigram_indexes(app, make_user):
    """PostgreSQL finds the candidates of a search from its trigram indexes and joins them (no
    scan of the messages); SQLite has no such index (nor a useless plain one on the text)."""
    agent = make_user(Role.AGENT)
    factories.conversation(team="Social care", text="order 4242 is late")
    statements = captured_statements(
        lambda: listing.list_conversations(agent, view="open", filters=listing.Filters(q="4242"))
    )
    if db.engine.dialect.name != "postgresql":
        names = db.session.connection().exec_driver_sql("SELECT name FROM sqlite_master")
        assert not [n for (n,) in names if n.endswith("_trgm")]
        return
    statement, parameters = _queue_statement(statements)
    plan = _plan(statement, parameters, "")
    for index in (
        "ix_messages_text_trgm",
        "ix_contacts_display_name_trgm",
        "ix_contact_identities_handle_trgm",
        "ix_contact_identities_display_name_trgm",
    ):
        assert index in plan, plan
    assert "Seq Scan on messages" not in plan, plan


def test_filters_of_open_views_are_narrowed_in_the_filters_index(app, make_user):
    """A filter combination matching no row of a team with many open DMs is looked up in the
    filters index (team, kind, priority, visibility and channel together), not by reading all
    the team's open rows nor by walking a queue index through them."""
    agent = make_user(Role.AGENT)
    first = factories.conversation(team="Social care")
    if db.engine.dialect.name == "postgresql":
        # Enough of the team's DMs for the planner to weigh its indexes by their statistics.
        db.session.execute(
            text(
                "INSERT INTO conversations (channel_account_id, contact_id, thread_key, kind,"
                " is_public, status, priority, team_id, is_spam, message_count, sla_state,"
                " sla_policy_pinned, version, created_at, updated_at)"
                " SELECT channel_account_id, contact_id, thread_key || '-' || g, kind, is_public,"
                " status, priority, team_id, is_spam, 0, sla_state, sla_policy_pinned, 1,"
                " created_at, updated_at FROM conversations, generate_series(1, 5000) g"
                " WHERE id = :id"
            ),
            {"id": first.id},
        )
        db.session.execute(text("ANALYZE conversations"))
    filters = listing.Filters(
        team_id=first.team_id, kind=Kind.MENTION, priority=Priority.URGENT, is_public=True
    )
    statements = captured_statements(
        lambda: listing.list_conversations(agent, view="open", filters=filters)
    )
    statement, parameters = _queue_statement(statements)
    # Sorting the few rows looked up is the plan wanted here.
    plan = _plan(statement, parameters, "ix_conversations_open_filters", sorts=True)
    assert "ix_conversations_open_filters" in plan, plan
    if db.engine.dialect.name == "postgresql":
        conditions = re.findall(r"Index Cond: (.*)", plan.split("ix_conversations_open_filters")[1])
        assert "kind" in conditions[0] and "priority" in conditions[0], plan


def test_a_listing_is_planned_for_its_values_and_nothing_else_is(app, make_user):
    if db.engine.dialect.name != "postgresql":
        return
    agent = make_user(Role.AGENT)
    db.session.commit()
    show = text("SHOW plan_cache_mode")
    listing.list_conversations(agent, view="open")
    assert db.session.execute(show).scalar() == "force_custom_plan"
    listing.count_conversations(agent, view="open")
    assert db.session.execute(show).scalar() == "force_custom_plan"
    db.session.commit()
    assert db.session.execute(show).scalar() == "auto"  # the next transaction, e.g. ingestion


def test_a_filter_the_agents_teams_never_match_is_expected_to_match_few_rows(app, make_user):
    """The joint statistics cover the visibility rule's columns (team, assignee) with the
    filters': a priority only another team's conversations have is expected to be rare among
    those the agent sees (assumed independent, it would be expected in a quarter of them, and
    the queue index walked through all of them to find none)."""
    if db.engine.dialect.name != "postgresql":
        return
    agent = make_user(Role.AGENT)
    other = factories.conversation(team="Billing")
    other.priority = Priority.URGENT
    mine = factories.conversation(team="Social care")
    mine.assignee = agent
    db.session.commit()
    copies = (
        "INSERT INTO conversations (channel_account_id, contact_id, thread_key, kind,"
        " is_public, status, priority, team_id, assignee_id, is_spam, message_count, sla_state,"
        " sla_policy_pinned, version, created_at, updated_at)"
        " SELECT channel_account_id, contact_id, thread_key || '-' || g, kind, is_public,"
        " status, CASE WHEN g % 2 = 0 THEN priority ELSE 'low' END, team_id,"
        " CASE WHEN g % 3 = 0 THEN assignee_id END, is_spam, 0, sla_state,"
        " sla_policy_pinned, 1, created_at, updated_at"
        " FROM conversations, generate_series(1, 3000) g WHERE id IN (:other, :mine)"
    )
    db.session.execute(text(copies), {"other": other.id, "mine": mine.id})
    db.session.execute(text("ANALYZE conversations"))
    statements = captured_statements(
        lambda: listing.list_conversations(
            agent, view="open", filters=listing.Filters(priority=Priority.URGENT)
        )
    )
    statement, parameters = _queue_statement(statements)
    cursor = psycopg.ClientCursor(db.session.connection().connection.dbapi_connection)
    explain = cursor.mogrify("EXPLAIN (FORMAT JSON) " + statement, parameters)
    plan = db.session.connection().exec_driver_sql(explain).scalar()
    assert plan[0]["Plan"]["Plan Rows"] <= 5, plan


def test_a_drilldown_banner_names_its_cycles_and_warns_only_where_they_repeat():
    start, end = datetime(2026, 1, 12, tzinfo=UTC), datetime(2026, 1, 22, tzinfo=UTC)
    first = listing.describe_drilldown(
        listing.Filters(
            sla_metric=SlaMetric.FIRST_RESPONSE,
            sla_outcome="breached",
            started_from=start,
            started_to=end,
        )
    )
    assert first.what == (
        "with a first response breached, started from 2026-01-12 00:00 UTC"
        " to before 2026-01-22 00:00 UTC"
    )
    assert first.note == ""  # one first response per conversation: the numbers agree
    bucket = listing.describe_drilldown(
        listing.Filters(
            sla_metric=SlaMetric.NEXT_RESPONSE,
            sla_outcome="measured",
            sla_basis="calendar",
            duration_min=3600,
            duration_max=4 * 3600,
        )
    )
    assert (
        bucket.what
        == "with a next-response cycle answered that took 1h to under 4h of calendar time"
    )
    assert bucket.note.startswith("One conversation can have several next-response cycles")
    resolved = listing.describe_drilldown(
        listing.Filters(sla_metric=SlaMetric.RESOLUTION, sla_outcome="measured")
    )
    assert (resolved.what, resolved.note) == ("with a resolution reached", "")
    anything = listing.describe_drilldown(listing.Filters(sla_outcome="open"))
    assert anything.what == "with an SLA cycle still running"
    assert "several SLA cycles" in anything.note
