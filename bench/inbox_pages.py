"""Queue and conversation page speed (issue #4) on PostgreSQL with a large seeded inbox.

Seeds N conversations and 5×N messages straight in SQL (generate_series) into a throwaway
PostgreSQL cluster, then times, through the real Flask app (test client, signed-in agent):
the first page of each queue view (/inbox/rows), filter combinations, the view counts
(/inbox/counts), and opening a 200-message conversation: the pane a click loads (X-Fragment)
and the whole page (queue and pane; its script then fetches the counts). Server time = the
request inside the process (no network).

    .venv/bin/python bench/inbox_pages.py [--conversations 1000000] [--repeat 20]
        [--database URL]

With --database the script uses that (PostgreSQL) database instead of a throwaway cluster and
seeds it only when it has no conversations yet, so repeated runs skip the 5-minute seeding;
the database is left as it is (create it empty, with the current schema or none).

Prints JSON (bench/results/inbox_pages.json) and the EXPLAIN ANALYZE of the main queue query
(the statement the app sends for the agent's "All open" view) and of a text search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.output import SECRET_KEY, peak_rss_mb, publish  # noqa: E402
from bench.plans import explain_sent  # noqa: E402
from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models import Role, User  # noqa: E402
from inbox.services.accounts import create_user, get_or_create_team  # noqa: E402
from inbox.services.listing import Filters, list_conversations  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402

SEED = """
INSERT INTO channel_accounts (platform, external_account_id, name, active, created_at,
  updated_at)
SELECT p, 'acct-' || p, 'Brand on ' || p, true, now(), now()
FROM unnest(ARRAY['x','messenger','instagram','facebook','whatsapp']) p;

INSERT INTO contacts (display_name, is_vip, notes, created_at, updated_at)
SELECT 'Customer ' || g, g % 100 = 0, '', now(), now() FROM generate_series(1, :contacts) g;

INSERT INTO contact_identities (contact_id, platform, external_user_id, handle, display_name,
  follower_count, verified, created_at, updated_at)
SELECT g, 'x', 'user-' || g, 'handle' || g, 'Customer ' || g, g % 5000, false, now(), now()
FROM generate_series(1, :contacts) g;

INSERT INTO conversations (channel_account_id, contact_id, thread_key, kind, is_public, status,
  priority, team_id, assignee_id, is_spam, first_inbound_at, last_inbound_at, last_message_at,
  first_response_at, message_count, sla_state, sla_due_at, language, sentiment, version,
  created_at, updated_at)
SELECT 1 + g % 5, 1 + g % :contacts, 'dm:' || g,
  (ARRAY['dm','mention','comment'])[1 + g % 3], g % 3 <> 0,
  (ARRAY['new','open','open','pending','resolved','resolved','resolved','closed'])[1 + g % 8],
  (ARRAY['low','normal','normal','normal','high','urgent'])[1 + g % 6],
  1 + g % 3, CASE WHEN g % 4 = 0 THEN 1 + g % 20 ELSE NULL END, g % 50 = 0,
  now() - (g || ' minutes')::interval, now() - (g || ' minutes')::interval,
  now() - ((g - 1) || ' minutes')::interval, NULL, 5,
  (ARRAY['ok','ok','warning','breached','none'])[1 + g % 5],
  CASE WHEN g % 5 = 4 THEN NULL ELSE now() + ((g % 600 - 100) || ' minutes')::interval END,
  (ARRAY['en','en','en','en','es','es','fr','de','pt','ja','ar'])[1 + g % 11], (g % 21 - 10) / 10.0,
  1, now(), now()
FROM generate_series(1, :conversations) g;

INSERT INTO tags (name) VALUES ('refund');

INSERT INTO conversation_tags (conversation_id, tag_id)
SELECT g, 1 FROM generate_series(7, :conversations, 7) g;

INSERT INTO messages (conversation_id, channel_account_id, external_id, direction, text, sent_at,
  is_auto_reply, attachments, history, created_at, updated_at)
SELECT 1 + g % :conversations, 1 + (1 + g % :conversations) % 5, 'm' || g,
  CASE WHEN g % 5 = 2 THEN 'outbound' ELSE 'inbound' END,
  'message ' || g || ' about order ' || (g % 99991) || ' and delivery',
  now() - (g / 5 || ' minutes')::interval, false, '[]', '[]', now(), now()
FROM generate_series(1, :conversations * 5) g;
"""

BIG_THREAD = """
INSERT INTO messages (conversation_id, channel_account_id, external_id, direction, text, sent_at,
  is_auto_reply, attachments, history, created_at, updated_at)
SELECT :conversation, 1, 'big' || g, CASE WHEN g % 2 = 0 THEN 'outbound' ELSE 'inbound' END,
  'long thread message ' || g, now() - ((200 - g) || ' minutes')::interval, false, '[]', '[]',
  now(), now()
FROM generate_series(1, 195) g;
"""


def timed(client, url: str, repeat: int, headers: dict | None = None) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url, headers=headers or {})
        samples.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)] * 1000, 1),
    }


def seed(conversations: int) -> float:
    """Fill an empty database (in SQL, see SEED); returns the seconds it took."""
    began = time.perf_counter()
    teams = [get_or_create_team(n) for n in ("Social care", "Billing", "Tech")]
    for i in range(20):
        create_user(
            f"agent{i}@example.com",
            name=f"Agent {i}",
            role=Role.AGENT,
            password="x",
            teams=[teams[i % 3]],
        )
    for statement in filter(str.strip, SEED.split(";")):
        db.session.execute(
            text(statement), {"contacts": conversations // 5, "conversations": conversations}
        )
    # Conversation 6 is in team Social care, like the agent who opens it.
    db.session.execute(text(BIG_THREAD), {"conversation": 6})
    db.session.commit()
    db.session.execute(text("ANALYZE"))
    return round(time.perf_counter() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", help="reuse this database (seeded on its first run)")
    args = parser.parse_args()
    pg = None if args.database else PostgresServer()
    redis = RedisServer()
    url = args.database or pg.create_database()
    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": redis.url,
            "RATELIMIT_STORAGE_URI": redis.url,
            "SESSION_COOKIE_SECURE": False,
        }
    )
    results: dict[str, object] = {"conversations": args.conversations}
    try:
        with app.app_context():
            db.create_all()
            if not db.session.execute(text("SELECT EXISTS (SELECT 1 FROM conversations)")).scalar():
                results["seed_seconds"] = seed(args.conversations)
            results["messages"] = db.session.execute(
                text("SELECT count(*) FROM messages")
            ).scalar_one()
            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = db.session.get(User, 1).get_id()  # Agent 0, Social care
            views = {}
            for view in (
                "breaching",
                "unassigned",
                "mine",
                "teams",
                "open",
                "pending",
                "snoozed",
                "resolved",
                "spam",
            ):
                views[view] = timed(client, f"/inbox/rows?view={view}", args.repeat)
            results["first_page"] = views
            results["counts"] = timed(client, "/inbox/counts", args.repeat)
            # Several match no row (kind, team, priority and channel all derive from the same
            # counter): the plans that read much for nothing.
            filters = {
                "platform+priority": "platform=x&priority=high",
                "team+kind+public": "team=1&kind=mention&public=public",
                "assignee+sort newest": "assignee=1&sort=newest",
                "tag": "tag=refund",
                "priority+tag": "priority=urgent&tag=refund",
                "platform+kind": "platform=x&kind=comment",
                "channel+private": "channel=2&public=private",
                "language": "language=ja",
                "language+kind+team": "language=fr&kind=dm&team=2",
                "sentiment+priority": "sentiment=negative&priority=high",
                "text search": "q=order+4242",
                "text search, a contact's name": "q=customer+4242",
            }
            results["filters"] = {
                name: timed(client, f"/inbox/rows?view=open&{query}", args.repeat)
                for name, query in filters.items()
            }
            results["open_200_messages_pane"] = timed(
                client, "/inbox/c/6", args.repeat, headers={"X-Fragment": "1"}
            )
            results["open_200_messages_page"] = timed(client, "/inbox/c/6", args.repeat)
            agent = db.session.get(User, 1)
            results["explain_open_sla_first"] = explain_sent(
                lambda: list_conversations(agent, view="open", limit=50), "LIMIT"
            )
            results["explain_text_search"] = explain_sent(
                lambda: list_conversations(
                    agent, view="open", filters=Filters(q="order 4242"), limit=50
                ),
                "LIMIT",
            )
            results["web_rss_mb"] = round(peak_rss_mb())
            db.session.remove()
            db.engine.dispose()
    finally:
        if pg:
            pg.close()
        redis.close()
    publish("inbox_pages", results)


if __name__ == "__main__":
    main()
