"""Shared fixtures: a real Redis server, the database under test (SQLite, or PostgreSQL when
INBOX_TEST_DB=postgresql), the app and its clients, users, a real worker process and Chromium.

Nothing here is faked: Redis is a real redis-server on a free loopback port, PostgreSQL a
throwaway cluster (or a fresh database on TEST_DATABASE_URL's server), and the worker is
`worker.py` in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from inbox import create_app
from inbox.extensions import db
from inbox.models import Role, User
from inbox.services.accounts import create_user, get_or_create_team
from tests.support.services import PostgresServer, RedisServer, free_port  # noqa: F401 (used by tests)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PASSWORD = "correct horse battery"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.close()


# --- Database ------------------------------------------------------------------------------


def _using_postgres() -> bool:
    return os.environ.get("INBOX_TEST_DB", "sqlite") == "postgresql"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    if not _using_postgres():
        yield None
        return
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def session_database_url(postgres) -> str | None:
    """One fresh PostgreSQL database for this test run (tables are reset per test)."""
    return postgres.create_database() if postgres else None


@pytest.fixture
def fresh_database_url(postgres, tmp_path) -> str:
    """A brand-new empty database, for tests that need one (migrations, the embedded stack)."""
    if postgres:
        return postgres.create_database()
    return f"sqlite:///{tmp_path}/fresh.db"


@pytest.fixture
def database_url(session_database_url, tmp_path) -> str:
    # SQLite: a file per test, so worker subprocesses and server threads see the same data.
    return session_database_url or f"sqlite:///{tmp_path}/test.db"


# --- App -----------------------------------------------------------------------------------


# As long as the app demands outside tests: worker and server subprocesses run without TESTING.
TEST_SECRET_KEY = "test-secret-key-of-the-test-suite-only"


def app_overrides(database_url: str, redis_url: str, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "INBOX_HEARTBEAT_SECONDS": 1,
        **extra,
    }


@pytest.fixture
def make_app(database_url, redis_url, tmp_path):
    """Build an app on the test database and Redis; tables are created once per test."""
    apps = []

    def factory(**extra):
        app = create_app(app_overrides(database_url, redis_url, **extra))
        app.instance_path = str(tmp_path)
        if not apps:
            Redis.from_url(redis_url).flushdb()
            with app.app_context():
                db.drop_all()
                db.create_all()
        apps.append(app)
        return app

    yield factory
    if apps:
        with apps[0].app_context():
            db.session.remove()
            _drop_tables()
            db.engine.dispose()


def _drop_tables() -> None:
    """Drop the test's tables. On PostgreSQL a page a browser test left open may still be
    posting (presence heartbeats) to its server thread, and that request's transaction can
    deadlock with the DROPs; so the database's other sessions are ended first, and a drop
    that still lost a deadlock is retried."""
    if db.engine.dialect.name != "postgresql":
        db.drop_all()
        return
    for attempt in range(3):
        with db.engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.commit()
        # This process's own pooled connections were among those ended: drop them, or the next
        # checkout pings a socket the server is closing (seen: the ping failed half-way and
        # psycopg refused to reset the connection, an error no retry here would catch).
        db.engine.dispose()
        try:
            db.drop_all()
            return
        except OperationalError:
            db.session.remove()
            if attempt == 2:
                raise


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    def factory(
        role: Role = Role.AGENT,
        *,
        email: str | None = None,
        team: str = "Social care",
        name: str | None = None,
    ) -> User:
        user = create_user(
            email or f"{role}-{uuid.uuid4().hex[:6]}@example.com",
            name=name or f"Test {role.value.title()}",
            role=role,
            password=PASSWORD,
            teams=[get_or_create_team(team)],
        )
        db.session.commit()
        return user

    return factory


def login(client, user: User) -> None:
    """Sign in without the form (most tests); the auth tests use the real form."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


# --- Processes -----------------------------------------------------------------------------


def process_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "DATABASE_"))}
    env.update(
        SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        INBOX_HEARTBEAT_SECONDS="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra environment for `worker_process`; a test module overrides it to point the worker
    at, e.g., a fake platform server."""
    return {}


@pytest.fixture
def worker_process(app, database_url, redis_url, tmp_path, worker_env):
    """A real `python worker.py` against the test database and Redis."""
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=process_env(database_url, redis_url, **worker_env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# --- Browser -------------------------------------------------------------------------------


@pytest.fixture
def live_server(app):
    """The app served by werkzeug in a thread on a free port, with CSRF protection on as in
    production: every form and fetch the pages make must carry their token."""
    from werkzeug.serving import make_server

    app.config["WTF_CSRF_ENABLED"] = True

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        reason = "Debian chromium is not installed (apt-get install chromium)"
        if os.environ.get("INBOX_REQUIRE_BROWSER"):
            pytest.fail(reason + " but INBOX_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def artifacts_dir() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def fake_platforms():
    """The local fake of the platforms' APIs (tests/fake_platforms.py), for one test."""
    from tests.fake_platforms import running_fake

    with running_fake() as fake:
        yield fake


# --- Jobs and webhooks -------------------------------------------------------------------------

WEBHOOK_FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
_SIGNATURES = json.loads((WEBHOOK_FIXTURES / "signatures.json").read_text())
X_SECRET = _SIGNATURES["x_consumer_secret"]
META_SECRET = _SIGNATURES["meta_app_secret"]
META_VERIFY_TOKEN = "bw-verify-2b7d91"
# The fixtures' fictional brand, as channel accounts.
BRAND_ACCOUNTS = (
    ("x", "1522093748110303232", "@BrightwaveHelp"),
    ("messenger", "104857392018475", "Brightwave (Messenger)"),
    ("facebook", "104857392018475", "Brightwave Page"),
    ("instagram", "17841460123456789", "@brightwave"),
    ("whatsapp", "118273645501928", "Brightwave +1 555 012 3456"),
)
WEBHOOK_SETTINGS = {
    "INBOX_X_CONSUMER_SECRET": X_SECRET,
    "INBOX_META_APP_SECRET": META_SECRET,
    "INBOX_META_VERIFY_TOKEN": META_VERIFY_TOKEN,
}


def endpoint_for(fixture: str) -> str:
    return "/webhooks/" + ("x" if fixture.startswith("x_") else fixture.split("_")[0])


def signed_post(client, fixture: str, body: bytes | None = None):
    """POST a recorded payload to its endpoint with the signature the platform would send."""
    from inbox.connectors.base import sha256_signature

    raw = (WEBHOOK_FIXTURES / fixture).read_bytes() if body is None else body
    path = endpoint_for(fixture)
    if path == "/webhooks/x":
        header = {"x-twitter-webhooks-signature": sha256_signature(X_SECRET, raw, "base64")}
    else:
        header = {"X-Hub-Signature-256": sha256_signature(META_SECRET, raw, "hex")}
    return client.post(path, data=raw, headers={**header, "Content-Type": "application/json"})


def run_jobs(app) -> None:
    """Run every queued job to completion with a real RQ worker inside this process."""
    from rq import SimpleWorker

    from inbox.queue import get_queue, get_redis

    # A fresh app context gives the jobs their own database session, as in a real worker,
    # so their commits and session clean-up don't disturb the test's session.
    with app.app_context():
        queues = [get_queue(name, app) for name in app.config["RQ_QUEUES"]]
        SimpleWorker(queues, connection=get_redis(app)).work(burst=True)


@pytest.fixture
def brand_accounts(app):
    from inbox.models import Platform
    from inbox.services.channels import add_channel

    accounts = {p: add_channel(Platform(p), aid, name=n)[0] for p, aid, n in BRAND_ACCOUNTS}
    db.session.commit()
    return accounts


@pytest.fixture
def webhook_app(make_app):
    app = make_app(**WEBHOOK_SETTINGS)
    with app.app_context():
        yield app
        db.session.remove()
