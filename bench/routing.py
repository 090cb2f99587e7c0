"""Routing benchmark (issue #7): rule evaluation cost per inbound message with 100 active rules,
and "get next" latency with many conversations and 8 concurrent agents.

Real parts only: a throwaway PostgreSQL cluster (or SQLite with --sqlite), redis-server and
gunicorn serving the app. Conversations are bulk-inserted with SQL so a large table is quick
to build. Each agent is a client process with its own API token calling
`POST /api/v1/conversations/next` in a loop, no pause, until it has made its share of the
claims or --seconds have passed, on one kept-alive connection; the latency is the client's (the
request and the whole answer), after an untimed warm-up.

    .venv/bin/python bench/routing.py [--conversations 1000000] [--agents 8] [--claims 2000]
        [--gunicorn "-k gthread --threads 16 -w 4": the web server's options, README's default]

Prints a markdown table (copy it into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from bench.plans import explain_sent  # noqa: E402
from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models import Conversation, Role, RoutingRule  # noqa: E402
from inbox.services import assignment, routing  # noqa: E402
from inbox.services.accounts import create_api_token, create_user, get_or_create_team  # noqa: E402
from tests import factories  # noqa: E402
from tests.support.services import (  # noqa: E402
    PostgresServer,
    RedisServer,
    free_port,
    gunicorn_command,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WARM_CLAIMS = 50  # per agent, untimed: more than psycopg's prepare threshold on every worker


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def build_rules(count: int) -> None:
    """`count` active rules that look at the text, platform and followers but do not match
    (the expensive case: every rule is evaluated)."""
    for i in range(count):
        db.session.add(
            RoutingRule(
                position=i,
                name=f"rule {i}",
                conditions=[
                    {"type": "platform", "values": ["x", "instagram"]},
                    {"type": "text_contains", "values": [f"keyword{i}", f"other{i}"]},
                    {"type": "followers_at_least", "value": 10_000_000},
                ],
                actions=[{"type": "add_tags", "tags": [f"t{i}"]}],
            )
        )
    db.session.commit()


def bench_rules(samples: int) -> dict[str, float]:
    build_rules(100)
    conversation = factories.conversation(text="My order has not arrived, can you help?")
    message = conversation.messages[0]
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        routing.apply_rules(conversation, message, now=NOW)
        times.append((time.perf_counter() - start) * 1000)
    db.session.rollback()
    return {"median_ms": statistics.median(times), "p95_ms": p95(times)}


FILL_POSTGRESQL = """
INSERT INTO conversations (channel_account_id, contact_id, thread_key, kind, is_public, status,
  priority, team_id, is_spam, sla_policy_pinned, sla_due_at, sla_state, first_inbound_at,
  message_count, version, created_at, updated_at)
SELECT :account, :contact, 'bench-' || i, 'dm', false,
  CASE WHEN i % 3 = 0 THEN 'new' ELSE 'open' END,
  (ARRAY['low', 'normal', 'high', 'urgent'])[1 + i % 4], :team, false, false,
  CASE WHEN i % 2 = 1 THEN :now + (i % 5000) * interval '1 minute' END, 'ok',
  :now - i * interval '1 second', 1, 1, :now, :now
FROM generate_series(0, :n - 1) i
"""


def fill(conversations: int) -> None:
    """`conversations` claimable conversations of team Social care: new or open, priorities in
    turn, every other one with a deadline. PostgreSQL builds them in SQL (a million in
    seconds); the same rows from Python for SQLite."""
    account = factories.channel()
    contact_id = factories.conversation(account=account).contact_id
    team = get_or_create_team("Social care")
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            text(FILL_POSTGRESQL),
            {
                "account": account.id,
                "contact": contact_id,
                "team": team.id,
                "now": NOW,
                "n": conversations,
            },
        )
    else:
        batch = []
        for i in range(conversations):
            batch.append(
                {
                    "channel_account_id": account.id,
                    "contact_id": contact_id,
                    "thread_key": f"bench-{i}",
                    "kind": "dm",
                    "is_public": False,
                    "status": "open" if i % 3 else "new",
                    "priority": ("low", "normal", "high", "urgent")[i % 4],
                    "team_id": team.id,
                    "is_spam": False,
                    "sla_policy_pinned": False,
                    "sla_due_at": NOW + timedelta(minutes=i % 5000) if i % 2 else None,
                    "sla_state": "ok",
                    "first_inbound_at": NOW - timedelta(seconds=i),
                    "message_count": 1,
                    "version": 1,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            if len(batch) == 5000:
                db.session.execute(insert(Conversation), batch)
                batch = []
        if batch:
            db.session.execute(insert(Conversation), batch)
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # as autovacuum would soon: the planner sees the table
    db.session.commit()


def _claim_over_http(conn: http.client.HTTPConnection, token: str) -> tuple[float, int | None]:
    """One `POST /api/v1/conversations/next`, timed as the client sees it: send, the whole
    answer read (and a new connection first when the server closed the last one)."""
    began = time.perf_counter()
    conn.request("POST", "/api/v1/conversations/next", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - began) * 1000
    if response.status == 204:
        return elapsed, None
    if response.status != 200:
        raise RuntimeError(f"get next answered {response.status}: {body[:200]!r}")
    return elapsed, json.loads(body)["id"]


def _agent(port: int, token: str, warm: int, claims: int, seconds: float, start, results):
    """One agent (a client process): `warm` claims, then claim in a loop, no pause, until it
    has made `claims` or `seconds` have passed; report the latencies and every claimed id.
    One connection, kept alive as a browser would."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    claimed: list[int] = []
    for _ in range(warm):
        claimed.append(_claim_over_http(conn, token)[1])
    start.wait()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while len(latencies) < claims and time.monotonic() < deadline:
        elapsed, conversation_id = _claim_over_http(conn, token)
        latencies.append(elapsed)
        claimed.append(conversation_id)
    results.put((latencies, [c for c in claimed if c is not None]))


def _serve(env: dict[str, str], options: list[str]) -> tuple[subprocess.Popen, int]:
    """gunicorn with `options` on a free loopback port, once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        gunicorn_command(port, *options),
        env={**os.environ, **env},
        cwd=ROOT,
    )
    for _ in range(300):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/login")
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def bench_get_next(
    env: dict[str, str], agents: int, options: list[str], claims: int, seconds: float
) -> dict:
    """`agents` client processes against gunicorn: every claim is a real HTTP request with
    the agent's API token, timed by the client. Each agent first makes `WARM_CLAIMS` claims
    (not timed) so every web process has imported, connected and prepared its statements."""
    users = [
        create_user(
            f"bench{i}@example.com",
            name=f"Bench {i}",
            role=Role.AGENT,
            password="x" * 12,
            teams=[get_or_create_team("Social care")],
        )
        for i in range(agents)
    ]
    db.session.commit()
    tokens = [create_api_token(u) for u in users]
    db.session.commit()
    plan = []
    if db.engine.dialect.name == "postgresql":
        plan = explain_sent(lambda: assignment.claim_next(users[0], now=NOW), "LIMIT")
        db.session.rollback()  # that claim was only to see the plan
    db.session.remove()
    db.engine.dispose()  # no connection may be shared with the forked agents
    server, port = _serve(env, options)
    try:
        context = multiprocessing.get_context("fork")
        start, results = context.Barrier(agents + 1), context.Queue()
        processes = [
            context.Process(
                target=_agent,
                args=(port, token, WARM_CLAIMS, claims // agents, seconds, start, results),
            )
            for token in tokens
        ]
        for p in processes:
            p.start()
        start.wait()
        load_before = os.getloadavg()
        started = time.perf_counter()
        outcomes = [results.get(timeout=seconds + 120) for _ in processes]
        wall = time.perf_counter() - started
        load_after = os.getloadavg()
        for p in processes:
            p.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = [ms for samples, _ in outcomes for ms in samples]
    claimed = [cid for _, ids_ in outcomes for cid in ids_]
    return {
        "claims": len(latencies),
        "duplicates": len(claimed) - len(set(claimed)),
        "median_ms": statistics.median(latencies),
        "p95_ms": p95(latencies),
        "per_second": len(latencies) / wall,
        "load": (load_before, load_after),
        "plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60, help="stop claiming after this")
    parser.add_argument(
        "--gunicorn",
        default="-k gthread --threads 16 -w 4",
        help="the web server's options (default: README's deployment)",
    )
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    redis = RedisServer()
    postgres = None
    tmp = tempfile.mkdtemp()
    if args.sqlite:
        url = f"sqlite:///{tmp}/bench.db"
    else:
        postgres = PostgresServer()
        url = postgres.create_database()
    config = {
        "TESTING": True,
        "SECRET_KEY": "bench",
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": redis.url,
        "RATELIMIT_STORAGE_URI": redis.url,
    }
    app = create_app(config)
    try:
        with app.app_context():
            db.create_all()
            rules = bench_rules(500)
            started = time.perf_counter()
            fill(args.conversations)
            fill_seconds = time.perf_counter() - started
            env = {
                "SECRET_KEY": "bench",
                "DATABASE_URL": url,
                "REDIS_URL": redis.url,
                "INBOX_SECURE_COOKIES": "0",
            }
            options = args.gunicorn.split()
            claims = bench_get_next(env, args.agents, options, args.claims, args.seconds)
            db.session.remove()
    finally:
        redis.close()
        if postgres is not None:
            postgres.close()
    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"| Measure ({database}) | Result |")
    print("|---|---|")
    print(
        f"| Rule evaluation, 100 active rules, per inbound message | median "
        f"{rules['median_ms']:.2f} ms, p95 {rules['p95_ms']:.2f} ms |"
    )
    print(
        f"| Get next, {args.conversations:,} conversations (filled in {fill_seconds:.0f} s), "
        f"{args.agents} agents over HTTP (gunicorn {args.gunicorn}), {claims['claims']} claims | "
        f"median {claims['median_ms']:.1f} ms, "
        f"p95 {claims['p95_ms']:.1f} ms, {claims['per_second']:.0f} claims/s, "
        f"{claims['duplicates']} duplicates |"
    )
    before, after = claims["load"]
    print(f"\nLoad average (1, 5, 15 min) as the timed claims began: {before}, at the end: {after}")
    print("\nThe candidate query (EXPLAIN ANALYZE, before the agents start):\n")
    print("\n".join(claims["plan"]))


if __name__ == "__main__":
    main()
