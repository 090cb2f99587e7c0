"""What every benchmark script shares: peak memory readings and writing its results.

Imports: stdlib only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# The app refuses a short SECRET_KEY outside tests (inbox.config), and the benches serve it so.
SECRET_KEY = "bench-secret-key-of-loopback-runs-only"


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak RSS (VmHWM) of a process (default: this one) and its children, in MB."""
    pid = pid or os.getpid()
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    total = 0
    for p in [pid, *map(int, children.split())]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:
            continue  # exited meanwhile
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
        )
    return total / 1024


def publish(name: str, results: dict) -> None:
    """Note the machine, write bench/results/<name>.json and print the results."""
    results["machine"] = (
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
