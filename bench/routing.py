"""Routing benchmark (issue #7): rule evaluation cost per inbound message with 100 active rules,
and "get next" latency with many conversations and 8 concurrent agents.

Real parts only: a throwaway PostgreSQL cluster (or SQLite with --sqlite), redis-server and
gunicorn serving the app. Conversations are bulk-inserted with SQL so a large table is quick
to build. Each agent is a client process with its own API token calling
`POST /api/v1/conversations/next` in a loop, no pause, until it has made its share of the
claims or --seconds have passed, on one kept-alive connection; the latency is the client's (the
request and the whole answer), after an untimed warm-up. `--client loop` drives the same agents
(a connection and a token each, closed loop, no pause) from one client process with
non-blocking sockets instead, so the load generator takes less of the 2 cores it shares with the
system under test. `--client together` makes the agent processes press get next at the same
moment, round after round (the next round once every agent has its answer): all the agents'
requests arrive at once, and none queues behind its own previous claim. Every way, the script
reports where the CPU went during the timed claims, per process type (clients, gunicorn,
PostgreSQL, Redis, anything else on the machine), per claim.

    .venv/bin/python bench/routing.py [--conversations 1000000] [--agents 8] [--claims 2000]
        [--gunicorn "-k gthread --threads 16 -w 4": the web server's options, README's default]
        [--client processes|together|loop: one process per agent (default), the same
         pressing together, or one for all]

Prints a markdown table (copy it into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from bench.output import SECRET_KEY  # noqa: E402
from bench.plans import explain_sent, settle_tables  # noqa: E402
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
    settle_tables()


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


def _agent(port: int, token: str, warm: int, claims: int, seconds: float, start, results, together):
    """One agent (a client process): `warm` claims, then claim in a loop, no pause, until it
    has made `claims` or `seconds` have passed; report the latencies and every claimed id.
    One connection, kept alive as a browser would. With `together` (a barrier of all the
    agents) each claim waits for every agent's last one, so they press get next at once."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    claimed: list[int] = []
    for _ in range(warm):
        claimed.append(_claim_over_http(conn, token)[1])
    start.wait()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    cpu_began = time.process_time()
    while len(latencies) < claims and time.monotonic() < deadline:
        if together is not None:
            try:
                together.wait(timeout=60)
            except threading.BrokenBarrierError:
                break  # another agent is out of time: this round is not complete
        elapsed, conversation_id = _claim_over_http(conn, token)
        latencies.append(elapsed)
        claimed.append(conversation_id)
    if together is not None:
        together.abort()  # whoever is still waiting for this agent stops too
    cpu = time.process_time() - cpu_began
    results.put(([latencies], [c for c in claimed if c is not None], cpu))


class _LoopAgent:
    """One agent of the one-process client: a non-blocking kept-alive connection that sends
    get next, reads the whole answer (Content-Length framed), and sends again."""

    def __init__(self, port: int, token: str) -> None:
        self.request = (
            "POST /api/v1/conversations/next HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = b""
        self.began = 0.0
        self.latencies: list[float] = []
        self.claimed: list[int] = []

    def send(self) -> None:
        self.buffer = b""
        self.began = time.perf_counter()
        self.sock.sendall(self.request)  # a few hundred bytes: the socket buffer takes them

    def receive(self) -> bool:
        """Read what has arrived; True once the whole answer is in (then it is recorded)."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buffer += chunk
        head, separator, body = self.buffer.partition(b"\r\n\r\n")
        if not separator:
            return False
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(b":") for x in lines[1:])
                if k.lower() == b"content-length"
            ),
            0,
        )
        if len(body) < length:
            return False
        if any(x.lower() == b"connection: close" for x in lines[1:]):
            # e.g. sync workers: this client does not reconnect (the per-agent one does).
            raise RuntimeError("--client loop needs a server that keeps connections alive")
        elapsed = (time.perf_counter() - self.began) * 1000
        if status == 200:
            self.claimed.append(json.loads(body)["id"])
        elif status != 204:
            raise RuntimeError(f"get next answered {status}: {body[:200]!r}")
        self.latencies.append(elapsed)
        return True


def _drive(agents: list[_LoopAgent], claims: int, seconds: float) -> None:
    """Every agent claims in a closed loop until each has `claims` latencies or `seconds`
    have passed; an answer is read as soon as its socket is readable."""
    selector = selectors.DefaultSelector()
    for agent in agents:
        selector.register(agent.sock, selectors.EVENT_READ, agent)
        agent.send()
    deadline = time.monotonic() + seconds
    busy = len(agents)
    while busy:
        for key, _ in selector.select(timeout=30):
            agent = key.data
            if not agent.receive():
                continue
            if len(agent.latencies) < claims and time.monotonic() < deadline:
                agent.send()
            else:
                selector.unregister(agent.sock)
                busy -= 1
    selector.close()


def _loop_client(
    port: int, tokens: list[str], warm: int, claims: int, seconds: float, start, results
):
    """All agents from this one process (`--client loop`): `warm` untimed claims each, then
    the timed closed loops; reports like `_agent`, once for all of them."""
    agents = [_LoopAgent(port, token) for token in tokens]
    _drive(agents, warm, 600)
    for agent in agents:
        agent.latencies = []
    start.wait()
    cpu_began = time.process_time()
    _drive(agents, claims, seconds)
    cpu = time.process_time() - cpu_began
    for agent in agents:
        agent.sock.close()
    results.put(([a.latencies for a in agents], [c for a in agents for c in a.claimed], cpu))


def _processes_cpu(
    roots: dict[str, list[int]], counted_apart: set[int]
) -> dict[int, tuple[str, float]]:
    """CPU seconds so far (user + system) of every process on the machine but
    `counted_apart`: those of each group (the root pids and all their descendants) under the
    group's name, any other under its own command name (to say what else ran), with the time
    of its children that have exited (short-lived processes show up under their parent; not
    for the groups: the PostgreSQL server would be charged the whole life of a backend that
    ends in the window, e.g. the one that filled the table)."""
    seen: dict[int, tuple[str, float]] = {pid: ("", 0.0) for pid in counted_apart}
    for group, pids in roots.items():
        for pid in pids:
            try:
                root = psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in family:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                seen[proc.pid] = (group, times.user + times.system)
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.pid not in seen and proc.info["cpu_times"] is not None:
            times = proc.info["cpu_times"]
            seen[proc.pid] = (f"other: {proc.info['name']}", _with_children(times))
    return seen


def _with_children(times) -> float:
    return times.user + times.system + times.children_user + times.children_system


def _machine_busy_seconds() -> tuple[float, float, float]:
    """CPU seconds the whole machine has spent not idle (all cores), and of those the ones in
    interrupts (irq, softirq: mostly the loopback network, charged to no process) and the
    ones stolen (the VM's host ran something else while this VM wanted the core), from
    /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / tick, (fields[5] + fields[6]) / tick, fields[7] / tick


def _cpu_by_group(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each group spent between the two readings (a process that started in
    between counts from zero)."""
    spent: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        spent[group] = spent.get(group, 0.0) + seconds - before.get(pid, (group, 0.0))[1]
    return spent


def _connections_per_worker(server: int, port: int) -> tuple[int, ...]:
    """How many client connections each gunicorn worker holds now, busiest first: kept-alive
    connections stay with the worker that accepted them, so this says how many processes (and
    GILs) share the agents."""
    counts = []
    for worker in psutil.Process(server).children():
        try:
            connections = worker.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        counts.append(
            sum(
                1
                for c in connections
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
            )
        )
    return tuple(sorted(counts, reverse=True))


# A gunicorn config that only marks each worker ready (its app loaded), in INBOX_BENCH_READY.
_READY_HOOK = """
import os
def post_worker_init(worker):
    open(os.path.join(os.environ["INBOX_BENCH_READY"], str(worker.pid)), "w").close()
"""


def _serve(env: dict[str, str], options: list[str], ready: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn with `options` on a free loopback port, once every worker has loaded the app
    (each marks itself in the folder `ready`; the hook is gunicorn's `-c`, so `options` must
    not bring one of their own).

    The master listens before its workers have booted, and connections made then wait in the
    backlog until the first worker is up, which accepts them all: the agents would share one
    process (and its GIL) however many there are. A real floor connects to workers that are
    long up, so the agents connect only once all of them are: every worker the master has
    forked is marked, and no new one has come for a second (the master sleeps up to 0.1 s
    between forks)."""
    port = free_port()
    hook = ready / "gunicorn_ready.py"
    hook.write_text(_READY_HOOK)
    proc = subprocess.Popen(
        gunicorn_command(port, *options, "-c", str(hook)),
        env={**os.environ, **env, "INBOX_BENCH_READY": str(ready)},
        cwd=ROOT,
    )
    settled_since, seen = None, set()
    for _ in range(600):
        workers = {str(child.pid) for child in psutil.Process(proc.pid).children()}
        if workers and workers == seen and workers <= {f.name for f in ready.iterdir()}:
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= 1.0:
                return proc, port
        else:
            settled_since, seen = None, workers
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn's workers did not start")


def bench_get_next(
    env: dict[str, str],
    agents: int,
    options: list[str],
    claims: int,
    seconds: float,
    client: str,
    services: dict[str, list[int]],
) -> dict:
    """`agents` agents against gunicorn: every claim is a real HTTP request with the agent's
    API token, timed by the client (`client`: "processes", one process per agent, "together",
    the same pressing get next at the same moment, round after round, or "loop", one process
    for all, closed loops). Each agent first makes `WARM_CLAIMS` claims (not timed) so every web
    process has imported, connected and prepared its statements. `services` are the root pids
    of the other processes whose CPU is reported (PostgreSQL, Redis)."""
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
    ready = Path(tempfile.mkdtemp())  # kept while gunicorn runs: a restarted worker marks too
    server, port = _serve(env, options, ready)
    try:
        context = multiprocessing.get_context("fork")
        if client == "loop":
            start, results = context.Barrier(2), context.Queue()
            processes = [
                context.Process(
                    target=_loop_client,
                    args=(port, tokens, WARM_CLAIMS, claims // agents, seconds, start, results),
                )
            ]
        else:
            start, results = context.Barrier(agents + 1), context.Queue()
            together = context.Barrier(agents) if client == "together" else None
            processes = [
                context.Process(
                    target=_agent,
                    args=(
                        port,
                        token,
                        WARM_CLAIMS,
                        claims // agents,
                        seconds,
                        start,
                        results,
                        together,
                    ),
                )
                for token in tokens
            ]
        for p in processes:
            p.start()
        roots = {"gunicorn": [server.pid], **services}
        apart = {os.getpid(), *(p.pid for p in processes)}
        start.wait(timeout=300)  # broken, not waited on forever, if a client failed warming up
        cpu_before, busy_before = _processes_cpu(roots, apart), _machine_busy_seconds()
        own_before = time.process_time()
        load_before = os.getloadavg()
        started = time.perf_counter()
        spread = _connections_per_worker(server.pid, port)
        outcomes = [results.get(timeout=seconds + 120) for _ in processes]
        wall = time.perf_counter() - started
        cpu_after, busy_after = _processes_cpu(roots, apart), _machine_busy_seconds()
        own = time.process_time() - own_before
        load_after = os.getloadavg()
        for p in processes:
            p.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(ready)
    latencies = [ms for samples, _, _ in outcomes for agent in samples for ms in agent]
    claimed = [cid for _, ids_, _ in outcomes for cid in ids_]
    spent = _cpu_by_group(cpu_before, cpu_after)
    spent.pop("", None)  # this script and its clients, which count their own time
    others = {g: v for g, v in spent.items() if g.startswith("other: ")}
    cpu = {
        f"clients ({len(processes)} process{'es' if len(processes) > 1 else ''})": sum(
            c for _, _, c in outcomes
        ),
        **{g: v for g, v in spent.items() if g not in others},
        "this script": own,
    }
    cpu["interrupts (loopback network)"] = busy_after[1] - busy_before[1]
    cpu["stolen by the VM's host"] = busy_after[2] - busy_before[2]
    # Other processes, by command name (other engineers' work, kernel threads): the three
    # busiest, then the rest of the machine's busy time.
    for group, seconds in sorted(others.items(), key=lambda kv: -kv[1])[:3]:
        cpu[group] = seconds
    cpu["everything else on the machine"] = busy_after[0] - busy_before[0] - sum(cpu.values())
    return {
        "claims": len(latencies),
        "duplicates": len(claimed) - len(set(claimed)),
        "median_ms": statistics.median(latencies),
        "p95_ms": p95(latencies),
        "per_second": len(latencies) / wall,
        "load": (load_before, load_after),
        "plan": plan,
        "spread": spread,
        "cpu": cpu,
        "wall": wall,
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
    parser.add_argument(
        "--client",
        choices=["processes", "together", "loop"],
        default="processes",
        help="the load generator: one process per agent claiming without a pause; the same "
        "processes pressing get next at the same moment, each round once all are answered; or "
        "one process for all agents without a pause",
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
        "SECRET_KEY": SECRET_KEY,
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
                "SECRET_KEY": SECRET_KEY,
                "DATABASE_URL": url,
                "REDIS_URL": redis.url,
                "INBOX_SECURE_COOKIES": "0",
            }
            options = args.gunicorn.split()
            services = {"redis": [redis.proc.pid]}
            if postgres is not None and postgres.postmaster_pid() is not None:
                services["postgresql"] = [postgres.postmaster_pid()]
            claims = bench_get_next(
                env, args.agents, options, args.claims, args.seconds, args.client, services
            )
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
        f"{args.agents} agents over HTTP (gunicorn {args.gunicorn}, client {args.client}), "
        f"{claims['claims']} claims | "
        f"median {claims['median_ms']:.1f} ms, "
        f"p95 {claims['p95_ms']:.1f} ms, {claims['per_second']:.0f} claims/s, "
        f"{claims['duplicates']} duplicates |"
    )
    print(
        "\nClient connections per gunicorn worker as the timed claims began: "
        + "/".join(str(n) for n in claims["spread"])
    )
    before, after = claims["load"]
    print(f"\nLoad average (1, 5, 15 min) as the timed claims began: {before}, at the end: {after}")
    print(
        f"\nCPU during the timed claims ({claims['wall']:.1f} s, {claims['claims']} claims; "
        f"2 cores give {2000 * claims['wall'] / max(claims['claims'], 1):.2f} ms per claim):\n"
    )
    print("| Process type | CPU s | ms per claim | share |")
    print("|---|---|---|---|")
    total = sum(claims["cpu"].values())
    for group, seconds in claims["cpu"].items():
        print(
            f"| {group} | {seconds:.1f} | {1000 * seconds / max(claims['claims'], 1):.2f} | "
            f"{100 * seconds / total:.0f} % |"
        )
    print(f"| all | {total:.1f} | {1000 * total / max(claims['claims'], 1):.2f} | 100 % |")
    print("\nThe candidate query (EXPLAIN ANALYZE, before the agents start):\n")
    print("\n".join(claims["plan"]))


if __name__ == "__main__":
    main()
