"""CSV import speed (issue #3: ≥ 5,000 rows/s) on PostgreSQL, with the phase split.

Each run gets fresh databases on one throwaway PostgreSQL cluster (migrated by `flask db
upgrade`) and the TWCS sample ×`--copies` (bench/ingest.py `synthetic_twcs`):

1. the headline: `flask --app inbox import-csv PATH --format twcs` as a process, timed from
   start to exit (interpreter start, parsing, the import with its SLA clocks);
2. the same functions in this process on a second database, each phase timed: reading the
   CSV, the import with its clocks (`import_twcs`); then the import again, which must add
   nothing. On PostgreSQL the batches run in `IMPORT_THREADS` threads: `--profile` sees only
   this thread's part (parsing, planning, waiting).

`--policy office` first adds a business-hours SLA policy with a warning threshold (every
clock then gets due instants); by default there is none, as in bench/ingest.py.

    .venv/bin/python bench/csv_import.py [--runs 3] [--copies 10] [--policy none|office]
        [--profile PATH.prof]

Prints the runs and their medians and writes bench/results/csv_import.json.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import SAMPLE, synthetic_twcs  # noqa: E402
from bench.output import SECRET_KEY, publish  # noqa: E402
from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models import BusinessCalendar, Message, SlaClock, SlaPolicy, WarnMode  # noqa: E402
from inbox.services.csv_import import import_twcs, read_twcs  # noqa: E402
from inbox.timeutil import utcnow  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402

FLASK = [sys.executable, "-m", "flask", "--app", "inbox"]


def migrated_database(pg: PostgresServer, policy: str) -> str:
    url = pg.create_database()
    env = {**os.environ, "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url}
    subprocess.run([*FLASK, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    if policy == "office":
        app = create_app({"SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
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
                    name="Office",
                    first_response_seconds=7200,
                    next_response_seconds=3600,
                    resolution_seconds=86400,
                    calendar=office,
                    business_hours=True,
                    warn_mode=WarnMode.PERCENT,
                    warn_value=75,
                )
            )
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
    return url


def cli_run(url: str, csv_path: Path, rows: int) -> float:
    """rows/s of the import command as a process."""
    env = {**os.environ, "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url}
    began = time.perf_counter()
    subprocess.run(
        [*FLASK, "import-csv", str(csv_path), "--format", "twcs"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return rows / (time.perf_counter() - began)


def phase_run(url: str, csv_path: Path, profile: cProfile.Profile | None) -> dict[str, float]:
    """Seconds per phase of the same import in this process, then of a re-run."""
    app = create_app({"SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        if profile:
            profile.enable()
        began = time.perf_counter()
        with csv_path.open(newline="", encoding="utf-8") as stream:
            tweets = read_twcs(stream)
        parsed = time.perf_counter()
        import_twcs(tweets, now=utcnow())
        imported = time.perf_counter()
        if profile:
            profile.disable()
        messages = db.session.query(Message).count()
        clocks = db.session.query(SlaClock).count()
        again_began = time.perf_counter()
        again = import_twcs(tweets, now=utcnow())
        rerun = time.perf_counter() - again_began
        if again.messages_created or db.session.query(Message).count() != messages:
            raise RuntimeError("the re-run added messages")
        db.session.remove()
        db.engine.dispose()
    return {
        "parse_s": parsed - began,
        "import_s": imported - parsed,
        "total_s": imported - began,
        "rerun_s": rerun,
        "messages": messages,
        "clocks": clocks,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--policy", choices=["none", "office"], default="none")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the in-process runs")
    args = parser.parse_args()
    if not SAMPLE.exists():
        raise SystemExit(f"{SAMPLE} is not here (the TWCS sample, ../shared/data)")
    pg = PostgresServer()
    csv_path = Path(tempfile.mkdtemp(prefix="inbox-bench-csv-")) / "twcs.csv"
    rows = synthetic_twcs(csv_path, args.copies)
    profile = cProfile.Profile() if args.profile else None
    cli: list[float] = []
    phases: list[dict[str, float]] = []
    try:
        for n in range(args.runs):
            cli.append(cli_run(migrated_database(pg, args.policy), csv_path, rows))
            phases.append(phase_run(migrated_database(pg, args.policy), csv_path, profile))
            print(
                f"run {n + 1}: command {cli[-1]:,.0f} rows/s; in process "
                + ", ".join(f"{k} {v:.2f}" for k, v in phases[-1].items() if k.endswith("_s")),
                file=sys.stderr,
            )
    finally:
        pg.close()
    if profile:
        profile.dump_stats(args.profile)

    def median(key: str) -> float:
        return round(statistics.median(p[key] for p in phases), 2)

    publish(
        "csv_import",
        {
            "rows": rows,
            "policy": args.policy,
            "runs": args.runs,
            "command_rows_per_s": {
                "median": round(statistics.median(cli)),
                "min": round(min(cli)),
                "max": round(max(cli)),
            },
            "in_process_s": {
                key: median(key) for key in ("parse_s", "import_s", "total_s", "rerun_s")
            },
            "in_process_rows_per_s": round(rows / median("total_s")),
            "messages": phases[0]["messages"],
            "clocks": phases[0]["clocks"],
        },
    )


if __name__ == "__main__":
    main()
