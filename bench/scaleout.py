"""Capacity behind the load balancer (issue 17): section 2's capacity workload through HAProxy to one, then two
web processes.

The EAs (200 × 25 v1 packets/s × 8 ticks = 40,000 ticks/s offered, two load processes) connect to HAProxy with
docker/haproxy.cfg (suho/cluster.py), which spreads them over the processes (fewest connections first); everything
else is `bench.ingest.load_run`: rows committed per second over the window, tick→row latency from the probe EAs,
the CPU of each daphne, HAProxy, PostgreSQL and the load generators. On a 2-core machine a second web process
competes with PostgreSQL and the load generators for the same cores: the CPU split says where the time went.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.ingest import CAPACITY_EAS, FPS, load_run
from bench.stats import num

LAYOUTS = (1, 2)  # web processes behind HAProxy


def run(*, eas: list, log_dir: Path, runs: int) -> dict:
    """One run per layout, whatever `runs` says: each costs about 25 s of the suite's run."""
    return {str(servers): load_run(eas[:CAPACITY_EAS], log_dir, fps=FPS, servers=servers, balancer=True)
            for servers in LAYOUTS}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [
        "| web processes behind HAProxy | offered | committed | tick→row p50 | tick→row p99 | CPU cores: each daphne "
        "/ HAProxy / PostgreSQL / load generators / machine busy | EAs connected |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for servers, r in result.items():
        each = " + ".join(f"{c:.2f}" for c in r["server_cpu_cores_each"])
        lines.append(
            f"| {servers} | {num(r['offered_ticks_s'])} ticks/s | {num(r['committed_ticks_s'])} ticks/s "
            f"| {'≥ ' if r['p50_censored'] else ''}{num(r['p50_ms'])} ms "
            f"| {'≥ ' if r['p99_censored'] else ''}{num(r['p99_ms'])} ms "
            f"| {each} / {r['balancer_cpu_cores']:.2f} / {r['postgres_cpu_cores']:.2f} / {r['load_cpu_cores']:.2f} "
            f"/ {r['machine_busy_cores']:.2f} | {r['connected']} |"
        )
    lines += [
        "",
        "One run per layout (`bench/scaleout.py`); the EAs, load and window are section 2's capacity runs "
        "(warm-up 2 s, window 10 s), each EA authenticated through the balancer. Connections closed by the server: "
        + ", ".join(f"{servers} process(es): {_closed(r) or 'none'}" for servers, r in result.items())
        + ". All processes share this machine's cores with PostgreSQL, the load generators and whatever else runs "
        "(machine busy, in cores of "
        f"{os.cpu_count()}): when it is near all of them, the figures measure the machine, not the web processes; "
        "compare the daphne cores with section 2's for one process at capacity (its table's \"of which daphne\").",
    ]
    return "\n".join(lines)


def _closed(r: dict) -> str:
    """The close codes the load processes saw, with counts ("4010 × 3"), or "" for none."""
    counts: dict[str, int] = {}
    for closed in r["closed"]:
        for code, n in closed.items():
            counts[str(code)] = counts.get(str(code), 0) + n
    return ", ".join(f"{code} × {n}" for code, n in counts.items())


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    return [
        (f"Sustained ingest, {servers} web process(es) behind HAProxy", f"{num(r['committed_ticks_s'])} ticks/s",
         "reported (issue 17)", None)
        for servers, r in result.items()
    ]  # fmt: skip
