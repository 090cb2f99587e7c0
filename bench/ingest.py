"""Ingestion benchmark (issue #3): webhook latency at a fixed rate, end-to-end message
throughput, the workers' throughput alone (a backlog posted while they are stopped, then
drained), CSV import speed, and peak RSS of web and worker processes.

Real parts only, loopback only: a throwaway PostgreSQL cluster, redis-server, gunicorn
(gthread) and `worker.py` processes, signed X webhook deliveries. Bounded in time.

    .venv/bin/python bench/ingest.py [--seconds 15] [--rate 300] [--web 2] [--threads 8]
        [--workers 2]

Prints a markdown table (copy it into docs/benchmarks.md) and writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.output import SECRET_KEY, peak_rss_mb, publish  # noqa: E402
from inbox.connectors.base import sha256_signature  # noqa: E402
from tests.support.services import (  # noqa: E402
    PostgresServer,
    RedisServer,
    free_port,
    gunicorn_command,
)

SECRET = "bench-consumer-secret"
BRAND = "1522093748110303232"
SAMPLE = ROOT.parent / "shared" / "data" / "twcs_sample.csv"


def delivery(start_id: int, count: int, customer: int) -> bytes:
    """One signed-able X Account Activity delivery carrying `count` DMs from one customer."""
    events = [
        {
            "type": "message_create",
            "id": str(start_id + i),
            "created_timestamp": str(1_741_943_525_000 + start_id + i),
            "message_create": {
                "target": {"recipient_id": BRAND},
                "sender_id": str(customer),
                "message_data": {"text": f"benchmark message {start_id + i} 📶"},
            },
        }
        for i in range(count)
    ]
    users = {str(customer): {"id": str(customer), "screen_name": f"c{customer}", "name": "C"}}
    return json.dumps(
        {"for_user_id": BRAND, "direct_message_events": events, "users": users}
    ).encode()


def post(conn: http.client.HTTPConnection, body: bytes) -> float:
    signature = sha256_signature(SECRET, body, "base64")
    began = time.perf_counter()
    conn.request(
        "POST",
        "/webhooks/x",
        body=body,
        headers={"x-twitter-webhooks-signature": signature, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"webhook answered {response.status}")
    return time.perf_counter() - began


def fixed_rate(port: int, rate: int, seconds: float, id_base: int) -> list[float]:
    """Open-loop load: requests are scheduled at `rate`/s whatever the answers' speed; the
    latency counts from the scheduled time, so queueing in the client is not hidden."""
    threads, latencies, lock = 32, [], threading.Lock()
    interval = threads / rate
    start = time.perf_counter() + 0.2

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while True:
            scheduled = start + index / rate + n * interval
            if scheduled - start > seconds:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            post(conn, delivery(id_base + index * 1_000_000 + n, 1, 10_000 + index * 1000 + n))
            with lock:
                latencies.append(time.perf_counter() - scheduled)
            n += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies


def flood(port: int, seconds: float, batch: int, id_base: int, concurrency: int = 16) -> int:
    """Closed loop: `concurrency` clients post as fast as answered for `seconds`."""
    sent, lock = [0], threading.Lock()
    deadline = time.perf_counter() + seconds

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.perf_counter() < deadline:
            first = id_base + (index * 10_000_000) + n * batch
            post(conn, delivery(first, batch, 50_000 + (index * 100_000 + n) % 5000))
            n += 1
        with lock:
            sent[0] += n * batch

    workers = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sent[0]


@contextmanager
def paused(processes):
    """The processes stopped (SIGSTOP) for the block, then continued."""
    for proc in processes:
        os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for proc in processes:
            os.kill(proc.pid, signal.SIGCONT)


def count_messages(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM messages")).scalar_one()


def wait_stored(engine, expected: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if count_messages(engine) >= expected:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"only {count_messages(engine)} of {expected} messages stored")


def synthetic_twcs(path: Path, copies: int) -> int:
    """The TWCS sample repeated with shifted ids (every copy is new data to the importer)."""
    with SAMPLE.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    offset = 10**9
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for c in range(copies):

            def shift(value: str, c=c) -> str:
                return ",".join(str(int(float(v)) + c * offset) for v in value.split(",") if v)

            for row in rows:
                writer.writerow(
                    {
                        **row,
                        "tweet_id": shift(row["tweet_id"]),
                        "author_id": row["author_id"]
                        if row["inbound"] == "False"
                        else str(int(row["author_id"]) + c * offset)
                        if row["author_id"].isdigit()
                        else row["author_id"],
                        "response_tweet_id": shift(row["response_tweet_id"]),
                        "in_response_to_tweet_id": shift(row["in_response_to_tweet_id"]),
                    }
                )
    return len(rows) * copies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per web process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()

    pg, redis = PostgresServer(), RedisServer()
    database_url = pg.create_database()
    env = {
        **os.environ,
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "INBOX_X_CONSUMER_SECRET": SECRET,
        "INBOX_SECURE_COOKIES": "0",
        "INBOX_HEARTBEAT_SECONDS": "5",
    }
    flask = [sys.executable, "-m", "flask", "--app", "inbox"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [*flask, "add-channel", "--platform", "x", "--account-id", BRAND, "--name", "@bench"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    port = free_port()
    logs = tempfile.mkdtemp(prefix="inbox-bench-")
    web = subprocess.Popen(
        gunicorn_command(
            port, "-k", "gthread", "--threads", str(args.threads), "-w", str(args.web)
        ),
        env=env,
        cwd=ROOT,
        stdout=open(f"{logs}/web.log", "w"),
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "worker.py"],
            env=env,
            cwd=ROOT,
            stdout=open(f"{logs}/worker{i}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(args.workers)
    ]
    engine = create_engine(database_url)
    results: dict[str, object] = {}
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/login")
                break
            except OSError:
                time.sleep(0.1)
        # Warm up every web process and worker (first requests import and connect lazily).
        warm = fixed_rate(port, 50, 3, 9 * 10**11)
        wait_stored(engine, len(warm), 120)
        latencies = fixed_rate(port, args.rate, args.seconds, 10**12)
        quantiles = statistics.quantiles(latencies, n=100)
        results["webhook"] = {
            "rate": args.rate,
            "requests": len(latencies),
            "p50_ms": round(quantiles[49] * 1000, 1),
            "p99_ms": round(quantiles[98] * 1000, 1),
        }
        wait_stored(engine, len(warm) + len(latencies), 180)
        for batch in (1, args.batch):
            before = count_messages(engine)
            began = time.perf_counter()
            sent = flood(port, args.seconds, batch, 2 * 10**12 + batch * 10**11)
            posted = time.perf_counter()
            done = wait_stored(engine, before + sent, 300)
            results[f"e2e_batch_{batch}"] = {
                "messages": sent,
                "posts_per_s": round(sent / batch / (posted - began)),
                "messages_per_s": round(sent / (done - began)),
            }
        # The workers alone: a backlog posted while they are stopped (SIGSTOP), then drained.
        for batch in (1, args.batch):
            before = count_messages(engine)
            with paused(workers):
                sent = flood(port, args.seconds / 2, batch, 3 * 10**12 + batch * 10**11)
                meanwhile = count_messages(engine) - before  # 0: they were stopped
            began = time.perf_counter()
            done = wait_stored(engine, before + sent, 300)
            results[f"backlog_batch_{batch}"] = {
                "messages": sent,
                "stored_while_paused": meanwhile,
                "messages_per_s": round(sent / (done - began)),
            }
        results["rss_mb"] = {
            "web": round(peak_rss_mb(web.pid)),
            "worker": round(max(peak_rss_mb(w.pid) for w in workers)),
        }
        if SAMPLE.exists():
            csv_path = Path(logs) / "twcs.csv"
            rows = synthetic_twcs(csv_path, 10)
            began = time.perf_counter()
            subprocess.run(
                [*flask, "import-csv", str(csv_path)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            elapsed = time.perf_counter() - began
            results["csv_import"] = {
                "rows": rows,
                "seconds": round(elapsed, 1),
                "rows_per_s": round(rows / elapsed),
            }
    finally:
        for proc in [web, *workers]:
            proc.terminate()
        for proc in [web, *workers]:
            proc.wait(timeout=30)
        engine.dispose()
        pg.close()
        redis.close()
    publish("ingest", results)


if __name__ == "__main__":
    main()
