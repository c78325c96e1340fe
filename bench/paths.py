"""Plain PostgreSQL (native partitions) vs TimescaleDB (issue 16 item 7): the same ingest and rollup measurements on
both databases, side by side in one run.

The plain side runs in this process, on the suite's own database; the TimescaleDB side in a child process
(`python -m bench.paths --child OUT`) against `SUHO_BENCH_TIMESCALEDB_URL`, else the TimescaleDB of
`../shared/timescaledb` (started if need be), in a database of its own (`bench_suho_ts`) made the README's way with
`SUHO_TIMESCALEDB=on`. Both use the same Redis and NATS, and the machine runs one side at a time. Short by design
(the suite's time budget): per database one capacity run (ticks/s committed through the service role), one run at
60 % of that capacity (tick→row p99) — on the plain side section 2's own runs when the suite ran it — and the
rollup-vs-raw queries on `ROLLUP_ACCOUNTS` accounts' week of raw rows, not section 6's 10 million.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import aged, ingest, rollup
from bench.stack import ROOT
from bench.stats import num

ROLLUP_ACCOUNTS = 50  # × 7 days at a 30-second cadence = 1,008,000 raw rows
TIMESCALEDB_DB = "bench_suho_ts"
SHARED_TIMESCALEDB = ROOT.parent / "shared" / "timescaledb" / "start"
CHILD_TIMEOUT_S = 600


def _median_run(runs: list[dict], key: str) -> dict:
    return sorted(runs, key=lambda run: run[key])[len(runs) // 2]


def measure(eas: list, log_dir: Path, ingest_result: dict | None = None) -> dict:
    """One database's figures: capacity, latency at 60 % of it, rollup vs raw (bench.ingest, bench.rollup).

    `ingest_result`: section 2's runs on this database in this suite run, whose median runs stand in for measuring
    capacity and latency again (the same protocol; it saves a minute of the budget)."""
    from django.db import connections

    from suho.timeseries import timescale_enabled

    if ingest_result:
        capacity = _median_run(ingest_result["capacity"], "committed_ticks_s")
        sustained = _median_run(ingest_result["binary"], "p99_ms")
    else:
        capacity = ingest.load_run(eas[: ingest.CAPACITY_EAS], log_dir, fps=ingest.FPS)
        count = ingest._sustained_eas(capacity["committed_ticks_s"])
        sustained = ingest.load_run(eas[:count], log_dir, fps=ingest.FPS, window_s=ingest.SUSTAINED_WINDOW_S)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        row = cursor.fetchone()
    timescale = timescale_enabled(connections["owner"])
    figures = rollup.run(eas=eas, runs=1, accounts=ROLLUP_ACCOUNTS)
    history = aged.measure()
    return {
        "server": f"PostgreSQL {version}" + (f", TimescaleDB {row[0]}" if row else ""),
        "timescale": timescale,
        "capacity": capacity,
        "sustained": sustained,
        "rollup": figures,
        "aged": history,
    }


def _timescaledb_url() -> str | None:
    url = os.environ.get("SUHO_BENCH_TIMESCALEDB_URL", "")
    if url or not SHARED_TIMESCALEDB.exists():
        return url or None
    started = subprocess.run([str(SHARED_TIMESCALEDB)], capture_output=True, text=True, check=False)
    lines = started.stdout.strip().splitlines()
    return lines[-1].replace("postgresql://", "postgres://", 1) if started.returncode == 0 and lines else None


def run(*, eas: list, log_dir: Path, runs: int, ingest_result: dict | None = None) -> dict:
    """`runs` is not used: one run per figure and database (the time budget)."""
    result = {"plain": measure(eas, log_dir, ingest_result), "plain_from_section_2": bool(ingest_result)}
    url = _timescaledb_url()
    if url is None:
        result["timescaledb_skipped"] = "no TimescaleDB: set SUHO_BENCH_TIMESCALEDB_URL (or have ../shared/timescaledb)"
        return result
    out = log_dir / "paths-timescaledb.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_ADMIN_URL": url, "SUHO_BENCH_DB": TIMESCALEDB_DB,
           "SUHO_TIMESCALEDB": "on"}  # fmt: skip
    with (log_dir / "paths-timescaledb.log").open("w") as log:
        done = subprocess.run([sys.executable, "-m", "bench.paths", "--child", str(out)], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=CHILD_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0 or not out.exists():
        result["timescaledb_skipped"] = (
            f"the TimescaleDB run failed (exit {done.returncode}): .state/bench/paths-timescaledb.log"
        )
        return result
    result["timescaledb"] = json.loads(out.read_text())
    return result


def child(out: Path) -> int:
    from bench.stack import bench_env

    bench_env()
    import django

    django.setup()
    from django.conf import settings

    from bench import fixtures

    fixtures.database_create()
    eas = fixtures.eas_create(count=max(ingest.CAPACITY_EAS, ROLLUP_ACCOUNTS))
    log_dir = Path(settings.STATE_DIR) / "bench"
    out.write_text(json.dumps(measure(eas, log_dir), default=str))
    return 0


def targets(result: dict) -> list[tuple[str, str, str, bool | None]]:
    return []  # the targets are section 2's and 6's; this section compares


def _side(side: dict) -> list[str]:
    cap, sus, roll = side["capacity"], side["sustained"], side["rollup"]
    ratios = [rollup._ratios(roll, name)["median"] for name in rollup.SEED_CLAIMS]
    censored = "≥ " if sus["p99_censored"] else ""
    return [
        f"{num(cap['committed_ticks_s'])} ticks/s",
        f"{censored}{num(sus['p99_ms'])} ms at {num(sus['offered_ticks_s'])} ticks/s",
        f"{roll['rollup_s']:.1f} s",
        *(f"{ratio:.0f}×" for ratio in ratios),
    ]


def markdown(result: dict) -> str:
    sides = [result["plain"], *([result["timescaledb"]] if "timescaledb" in result else [])]
    offered = num(sides[0]["capacity"]["offered_ticks_s"])
    figures = [
        f"ingest capacity, committed through the service role (offered {offered} ticks/s)",
        "tick→row p99 at 60 % of that capacity",
        f"`balance_rollup_refresh` over the week ({num(result['plain']['rollup']['rows'])} raw rows)",
        *(f"rollup vs raw: {rollup.LABELS[name]}" for name in rollup.SEED_CLAIMS),
    ]
    columns = [_side(side) for side in sides]
    labels = [("TimescaleDB hypertables" if side["timescale"] else "native partitions") for side in sides]
    lines = [
        "| figure | "
        + " | ".join(f"{label} ({side['server']})" for label, side in zip(labels, sides, strict=True))
        + " |",
        "|---|" + "---:|" * len(sides),
    ]
    lines += [f"| {figure} | " + " | ".join(col[i] for col in columns) + " |" for i, figure in enumerate(figures)]
    if "timescaledb_skipped" in result:
        lines += ["", f"TimescaleDB: {result['timescaledb_skipped']}."]
    lines += _aged(sides, labels)
    lines += [
        "",
        "One run per figure and database, one database at a time on the same machine, the same code, EAs and "
        "protocol (section 2's capacity and 60 % runs"
        + ("; native partitions: section 2's median runs" if result.get("plain_from_section_2") else "")
        + f"; section 6's queries on {ROLLUP_ACCOUNTS} accounts' week). The TimescaleDB server is "
        "`../shared/timescaledb` (PostgreSQL 15, "
        "TimescaleDB 2.28.3, default settings) unless `SUHO_BENCH_TIMESCALEDB_URL` names another; the plain one is "
        "the suite's, so their PostgreSQL versions may differ (in the headings). Both have row-level security on every "
        "time-series table, as in production.",
    ]
    return "\n".join(lines) + "\n"


def _aged(sides: list[dict], labels: list[str]) -> list[str]:
    """The hot paths' reads on a database with history (bench.aged), where both sides measured them."""
    sides = [side for side in sides if "aged" in side]
    if not sides:
        return []
    columns = [dict(aged.rows(side["aged"])) for side in sides]
    lines = ["", "#### The hot paths on a database with history (`bench/aged.py`)", "",
             "| figure | " + " | ".join(labels[: len(sides)]) + " |", "|---|" + "---:|" * len(sides)]  # fmt: skip
    lines += [f"| {figure} | " + " | ".join(col[figure] for col in columns) + " |" for figure in columns[0]]
    return [*lines, "", aged.note([side["aged"] for side in sides])]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(Path(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} --child OUT (bench.run runs this section: --only paths)")
