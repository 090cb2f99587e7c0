"""The `make run` start-up path: embedded Redis, migrations, demo data, worker and web server,
healthy on /healthz; Ctrl-C stops everything; a second start reuses the data."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, free_port, process_env

pytestmark = pytest.mark.slow


def start_stack(instance, database_url, port):
    env = process_env(
        database_url,
        "unused",
        INBOX_INSTANCE_PATH=str(instance),
        INBOX_PORT=str(port),
        INBOX_DEMO_CSV="",
    )
    # The stack starts its own embedded Redis and makes its own secret key.
    env.pop("REDIS_URL")
    env.pop("SECRET_KEY")
    return subprocess.Popen(
        [sys.executable, "-m", "inbox.devstack"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def read_until_running(proc) -> tuple[str, str]:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"inbox is running at (http://\S+)", line)
        if match:
            return match.group(1), "".join(seen)
    raise AssertionError("stack exited before it was running:\n" + "".join(seen))


def stop(proc) -> int:
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[0]
    assert "stopping" in rest
    return proc.returncode


def conversation_count(database_url) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM conversations")).scalar_one()
    finally:
        engine.dispose()


def test_make_run_path_starts_healthy_stops_cleanly_and_restarts_on_the_same_data(
    tmp_path, fresh_database_url
):
    instance = tmp_path / "instance"
    port = free_port()
    proc = start_stack(instance, fresh_database_url, port)
    try:
        url, output = read_until_running(proc)
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "/login", timeout=5) as response:
            assert b"Sign in" in response.read()
        assert "admin@example.com" in output and "password: inbox-demo" in output
        assert (instance / "redis.sock").exists()
    finally:
        code = stop(proc)
    assert code == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/healthz", timeout=2)
    first = conversation_count(fresh_database_url)
    assert first > 0

    again = start_stack(instance, fresh_database_url, port)
    try:
        read_until_running(again)
    finally:
        assert stop(again) == 0
    assert conversation_count(fresh_database_url) == first
