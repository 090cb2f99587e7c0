"""Reports benchmark (issue #6): the 30-day SLA report with one filter, and the row-level CSV
export's rows/s and memory, over N conversations (and their SLA ledger) in PostgreSQL.

A throwaway PostgreSQL cluster (tests/support/services.PostgresServer); data is seeded with
set-based `INSERT … SELECT generate_series` (two clocks per conversation, a next-response cycle
for every third, one inbound message each), then timed through the same service calls the web
page and the CSV route make, in this process (the "web process").

    .venv/bin/python bench/reports.py [--conversations 1000000] [--repeat 3]

Prints a markdown table (copy it into docs/benchmarks.md) and writes bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from bench.output import SECRET_KEY, peak_rss_mb, publish  # noqa: E402
from bench.plans import settle_tables  # noqa: E402
from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models import Role, User  # noqa: E402
from inbox.services import reports  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
DAYS = 90  # conversations spread over the 90 days before NOW

SEED = """
INSERT INTO teams (id, name, created_at, updated_at)
  SELECT i, 'Team ' || i, now(), now() FROM generate_series(1, 4) i;
INSERT INTO channel_accounts (id, platform, external_account_id, name, active, created_at,
    updated_at)
  SELECT i, (ARRAY['x','messenger','instagram','whatsapp'])[i], 'acct-' || i, 'Account ' || i,
         true, now(), now() FROM generate_series(1, 4) i;
INSERT INTO contacts (id, display_name, is_vip, notes, created_at, updated_at)
  SELECT i, 'Customer ' || i, false, '', now(), now() FROM generate_series(1, 1000) i;
INSERT INTO sla_policies (id, position, name, active, priorities, platforms, kinds, visibility,
    tags, first_response_seconds, next_response_seconds, resolution_seconds, business_hours,
    warn_mode, warn_value, warning_actions, breach_actions, count_echoes, count_auto_replies,
    created_at, updated_at)
  VALUES (1, 1, '24/7', true, '[]', '[]', '[]', 'any', '[]', 3600, 7200, 28800, false,
    'percent', 75, '[]', '[]', true, false, now(), now());
INSERT INTO conversations (id, channel_account_id, contact_id, thread_key, kind, is_public,
    status, priority, team_id, is_spam, first_inbound_at, first_response_at, last_inbound_at,
    last_message_at, resolved_at, message_count, sla_policy_id, sla_state, version,
    created_at, updated_at)
  SELECT i, 1 + i % 4, 1 + i % 1000, 't' || i, 'dm', false,
         CASE WHEN i % 10 = 0 THEN 'open' ELSE 'resolved' END,
         (ARRAY['low','normal','high','urgent'])[1 + i % 4], 1 + (i / 7) % 4, false,
         t, t + reply, t, t + reply, CASE WHEN i % 10 = 0 THEN NULL ELSE t + resolve END,
         2, 1, 'ok', 1, now(), now()
  FROM (SELECT i, :now - make_interval(secs => (:n - i)::bigint * (:days * 86400) / :n) AS t,
               make_interval(secs => (i % 97) * 60) AS reply,
               make_interval(secs => (i % 601) * 60) AS resolve
        FROM generate_series(1, :n) i) g;
INSERT INTO messages (conversation_id, channel_account_id, external_id, direction, text,
    sent_at, is_auto_reply, attachments, history, created_at, updated_at)
  SELECT id, channel_account_id, 'm' || id, 'inbound', 'help', first_inbound_at, false, '[]',
         '[]', now(), now() FROM conversations;
INSERT INTO sla_clocks (conversation_id, policy_id, metric, cycle, started_at, target_seconds,
    due_at, pauses, paused_seconds, stopped_at, counted_seconds, stop_reason, breached_at)
  SELECT id, 1, 'first_response', 1, first_inbound_at, 3600,
         first_inbound_at + interval '1 hour', '[]', 0, first_response_at,
         extract(epoch from first_response_at - first_inbound_at)::int, 'replied',
         CASE WHEN first_response_at > first_inbound_at + interval '1 hour'
              THEN first_inbound_at + interval '1 hour' END
  FROM conversations;
INSERT INTO sla_clocks (conversation_id, policy_id, metric, cycle, started_at, target_seconds,
    due_at, pauses, paused_seconds, stopped_at, counted_seconds, stop_reason, breached_at)
  SELECT id, 1, 'resolution', 1, first_inbound_at, 28800, first_inbound_at + interval '8 hours',
         '[]', 0, resolved_at, extract(epoch from resolved_at - first_inbound_at)::int,
         CASE WHEN resolved_at IS NOT NULL THEN 'resolved' END,
         CASE WHEN resolved_at > first_inbound_at + interval '8 hours'
              THEN first_inbound_at + interval '8 hours' END
  FROM conversations;
INSERT INTO sla_clocks (conversation_id, policy_id, metric, cycle, started_at, target_seconds,
    due_at, pauses, paused_seconds, stopped_at, counted_seconds, stop_reason, breached_at)
  SELECT id, 1, 'next_response', 1, first_response_at + interval '10 minutes', 7200,
         first_response_at + interval '130 minutes', '[]', 0,
         first_response_at + interval '40 minutes', 1800, 'replied', NULL
  FROM conversations WHERE id % 3 = 0;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    server = PostgresServer()
    try:
        url = server.create_database()
        app = create_app(
            {"TESTING": True, "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": url}
        )
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            for statement in SEED.split(";\n"):
                if statement.strip():
                    db.session.execute(
                        text(statement), {"n": args.conversations, "now": NOW, "days": DAYS}
                    )
            # The visibility map lets the report read the ledger's range from its covering
            # index alone.
            settle_tables()
            seed_seconds = time.perf_counter() - started
            admin = User(email="admin@bench", name="Admin", role=Role.ADMIN, password_hash="x")  # noqa: S106 (never signs in)
            db.session.add(admin)
            db.session.commit()
            rss_before = peak_rss_mb()

            results: dict[str, object] = {
                "conversations": args.conversations,
                "clocks": db.session.scalar(text("SELECT count(*) FROM sla_clocks")),
                "seed_seconds": round(seed_seconds, 1),
            }
            for name, filters in (
                ("no filter", {}),
                ("team", {"team": "2"}),
                ("platform", {"platform": "messenger"}),
                ("priority", {"priority": "high"}),
            ):
                query = reports.parse_query(
                    MultiDict({"preset": "30d", "tz": "Europe/Paris", **filters}), now=NOW
                )
                timings = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    reports.sla_report(query, viewer=admin)
                    timings.append(time.perf_counter() - t0)
                    db.session.rollback()
                results[f"report 30d, {name} (s, median of {args.repeat})"] = round(
                    statistics.median(timings), 3
                )

            query = reports.parse_query(
                MultiDict({"preset": "custom", "from": "2025-11-01", "to": "2026-01-31"}), now=NOW
            )
            t0 = time.perf_counter()
            rows = 0
            for _ in reports.export_rows(query, viewer=admin):
                rows += 1
            seconds = time.perf_counter() - t0
            results["export rows"] = rows
            results["export rows/s"] = round(rows / seconds)
            results["peak RSS before reports (MB)"] = round(rss_before, 1)
            results["peak RSS after export (MB)"] = round(peak_rss_mb(), 1)
    finally:
        server.close()

    publish("reports", results)
    print("| measure | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
