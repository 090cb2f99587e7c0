"""SLA engine speed (issue #5) on PostgreSQL.

1. Sweep: N open conversations, each with a running first-response clock, 5% of them past due
   (and as many past their warning instant), seeded in SQL; times `sla.sweep(now=…)` (which
   marks each warning/breach once and runs the escalations: the breach notifies the assignee,
   one of 20 agents, so 5% of N notifications), and a second sweep that must find nothing.
2. Cost per ingested message: M single-message webhook deliveries processed with the SLA
   clocks running (a policy with business hours), alternating with the same with the SLA
   hooks disabled; the difference of the medians is what computing due times adds. Measured
   for a delivery that creates its conversation (the headline, the worst case) and then for
   a second customer message into each of those conversations.

    .venv/bin/python bench/sla.py [--conversations 100000] [--messages 500]

`--messages 0` skips part 2 (the sweep only).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.ingest import BRAND, delivery  # noqa: E402
from bench.output import SECRET_KEY, publish  # noqa: E402
from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models import BusinessCalendar, InboundEvent, Platform, Role, SlaPolicy  # noqa: E402
from inbox.services import sla  # noqa: E402
from inbox.services.accounts import create_user  # noqa: E402
from inbox.services.channels import add_channel  # noqa: E402
from inbox.services.events import process_event  # noqa: E402
from inbox.timeutil import utcnow  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402

SEED = """
INSERT INTO contacts (display_name, is_vip, notes, created_at, updated_at)
SELECT 'C' || g, false, '', now(), now() FROM generate_series(1, :n) g;
INSERT INTO conversations (channel_account_id, contact_id, thread_key, kind, is_public, status,
  priority, is_spam, message_count, sla_policy_id, sla_state, sla_due_at, version, created_at,
  updated_at, first_inbound_at, last_inbound_at, last_message_at, assignee_id)
SELECT 1, g, 'dm:' || g, 'dm', false, 'open', 'normal', false, 1, 1, 'ok',
  now() + ((CASE WHEN g % 20 = 0 THEN -10 ELSE 60 + g % 500 END) || ' minutes')::interval, 1,
  now(), now(), now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour',
  :first_agent + g % 20
FROM generate_series(1, :n) g;
INSERT INTO sla_clocks (conversation_id, policy_id, metric, cycle, started_at, target_seconds,
  due_at, warn_at, pauses, paused_seconds)
SELECT g, 1, 'first_response', 1, now() - interval '1 hour', 7200,
  now() + ((CASE WHEN g % 20 = 0 THEN -10 ELSE 60 + g % 500 END) || ' minutes')::interval,
  now() + ((CASE WHEN g % 20 = 1 THEN -5 ELSE 30 + g % 500 END) || ' minutes')::interval,
  '[]', 0
FROM generate_series(1, :n) g;
"""


def _sla_hooks_off():
    return mock.patch.object(sla, "on_message")


def _per_message(count: int, *, message: int) -> dict[str, float]:
    """Median time to process a single-message delivery with and without the SLA hooks, the
    `message`-th of each of `count` customers per variant. The two variants alternate message
    by message, so a busy machine slows both alike."""
    variants = {"with_sla": contextlib.nullcontext, "without_sla": _sla_hooks_off}
    ids: dict[str, list[int]] = {}
    for n, label in enumerate(variants):
        first = 10_000_000 + n * 1_000_000
        events = [
            InboundEvent(
                platform="x",
                received_at=utcnow(),
                body=delivery(customer * 10 + message, 1, customer),
            )
            for customer in range(first, first + count)
        ]
        db.session.add_all(events)
        db.session.commit()
        ids[label] = [e.id for e in events]
    timings: dict[str, list[float]] = {label: [] for label in variants}
    for i in range(count):
        for label, context in variants.items():
            event = db.session.get(InboundEvent, ids[label][i])
            with context():
                began = time.perf_counter()
                process_event(event, now=utcnow())
                db.session.commit()
                timings[label].append(time.perf_counter() - began)
    samples = {label: statistics.median(t) * 1000 for label, t in timings.items()}
    return {
        "with_sla_median": round(samples["with_sla"], 2),
        "without_sla_median": round(samples["without_sla"], 2),
        "sla_adds": round(samples["with_sla"] - samples["without_sla"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    pg, redis = PostgresServer(), RedisServer()
    url = pg.create_database()
    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": redis.url,
            "RATELIMIT_STORAGE_URI": redis.url,
        }
    )
    results: dict[str, object] = {}
    try:
        with app.app_context():
            db.create_all()
            office = BusinessCalendar(
                name="Office",
                timezone="Europe/London",
                holidays=[],
                country="GB",
                weekly={str(d): [["09:00", "12:00"], ["13:00", "17:00"]] for d in range(5)},
            )
            db.session.add(
                SlaPolicy(
                    position=1,
                    name="Default",
                    first_response_seconds=7200,
                    resolution_seconds=86400,
                    calendar=office,
                    business_hours=True,
                    warn_value=75,
                    breach_actions=[{"type": "notify", "to": ["assignee"]}],
                )
            )
            add_channel(Platform.X, BRAND, name="@bench")
            agents = [
                create_user(
                    f"agent{n}@bench", name=f"Agent {n}", role=Role.AGENT, password="x" * 12
                )
                for n in range(20)
            ]
            db.session.commit()
            seed = {"n": args.conversations, "first_agent": agents[0].id}
            for statement in filter(str.strip, SEED.split(";")):
                db.session.execute(text(statement), seed)
            db.session.commit()
            db.session.execute(text("ANALYZE"))
            began = time.perf_counter()
            first = sla.sweep(now=utcnow())
            db.session.commit()
            results["sweep"] = {
                "open_conversations": args.conversations,
                "seconds": round(time.perf_counter() - began, 3),
                "breached": len(first.breached),
                "warned": len(first.warned),
                "escalations": first.actions,
            }
            began = time.perf_counter()
            again = sla.sweep(now=utcnow())
            db.session.commit()
            results["sweep_again"] = {
                "seconds": round(time.perf_counter() - began, 3),
                "marked": len(again.breached) + len(again.warned),
            }
            # Per-message cost of the SLA hooks: first a message from a fresh customer (it
            # creates the conversation and its clocks: the headline), then a second message
            # from each of them into that conversation (the common case). --messages 0: the
            # sweep only.
            if args.messages:
                results["per_message_ms"] = _per_message(args.messages, message=0)
                results["per_message_existing_conversation_ms"] = _per_message(
                    args.messages, message=1
                )
            db.session.remove()
            db.engine.dispose()
    finally:
        pg.close()
        redis.close()
    publish("sla", results)


if __name__ == "__main__":
    main()
