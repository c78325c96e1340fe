"""Connections (issue 9 item 5): idle EAs with 30-second heartbeats held by one daphne process; memory per connection.

The server runs with its open-file limit raised to the hard limit (checked on the process). A warm-up of
`BASELINE_EAS` connections loads every code path first (hub subscription, database connections, batchers), then
the EAs join in steps up to `TARGET`; RSS is read at each step and after holding them all for `HOLD_S` (every EA
sends at least one heartbeat). Memory per connection = RSS growth / connections added: over the whole range, and
per step (the spread).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from bench.stack import Daphne, LoadProcess
from bench.stats import met, num, spread

TARGET = 5_000
TARGET_KB = 100
BASELINE_EAS = 20
STEPS = (1_000, 2_500, 5_000)
PROCESS_EAS = 1_250
HOLD_S = 32  # ≥ one heartbeat period after the last EA connected
HEARTBEAT_S = 30


def run(*, eas: list, log_dir: Path, target: int = TARGET) -> dict:
    daphne = Daphne(log_dir, name="connections")
    loads: list[LoadProcess] = []
    steps = []
    try:
        nofile = daphne.nofile_limit()
        base = LoadProcess(
            {"url": daphne.url, "eas": [ea.as_dict() for ea in eas[:BASELINE_EAS]], "heartbeat_s": HEARTBEAT_S},
            log_dir,
            "conn-base",
        )
        loads.append(base)
        base.event(60)
        time.sleep(2)
        rss0, connected = daphne.rss_bytes(), BASELINE_EAS
        steps.append({"connected": connected, "rss": rss0, "seconds": 0.0})
        for step in (s for s in STEPS if s <= target):
            new = eas[connected:step]
            batch = [
                LoadProcess(
                    {
                        "url": daphne.url,
                        "eas": [ea.as_dict() for ea in new[i : i + PROCESS_EAS]],
                        "heartbeat_s": HEARTBEAT_S,
                        "connect_concurrency": 25,
                    },
                    log_dir,
                    f"conn-{step}-{i}",
                )
                for i in range(0, len(new), PROCESS_EAS)
            ]
            loads += batch
            ready = [load.event(240) for load in batch]
            connected += sum(r["connected"] for r in ready)
            time.sleep(2)
            steps.append(
                {
                    "connected": connected,
                    "rss": daphne.rss_bytes(),
                    "established": daphne.established(),
                    "seconds": max(r["connect_s"] for r in ready),
                    "failed": sum(r["failed"] for r in ready),
                }
            )
        cpu0 = daphne.cpu_s()
        time.sleep(HOLD_S)
        held = {
            "rss": daphne.rss_bytes(),
            "established": daphne.established(),
            "cpu_cores": (daphne.cpu_s() - cpu0) / HOLD_S,
        }
        results = [load.stop() for load in loads]
    finally:
        for load in loads:
            load.kill()
        daphne.stop()
    open_at_end = sum(r["open_at_stop"] for r in results)
    per_step = [
        (b["rss"] - a["rss"]) / (b["connected"] - a["connected"]) / 1024
        for a, b in itertools.pairwise(steps)
        if b["connected"] > a["connected"]
    ]
    return {
        "target": target,
        "nofile": nofile,
        "steps": steps,
        "held": held,
        "open_at_end": open_at_end,
        "heartbeats": sum(r["heartbeats"] for r in results),
        "closed": [r["closed"] for r in results if r["closed"]],
        "kb_per_connection": (held["rss"] - rss0) / max(open_at_end - BASELINE_EAS, 1) / 1024,
        "kb_per_connection_steps": per_step,
    }


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    return [
        ("Idle EAs held by one process", f"{result['open_at_end']:,}", "5,000", result["open_at_end"] >= TARGET),
        (
            "Memory per connection",
            f"{result['kb_per_connection']:.1f} KB",
            "< 100 KB",
            result["kb_per_connection"] < TARGET_KB,
        ),
    ]


def markdown(result: dict) -> str:
    steps = spread(result["kb_per_connection_steps"])
    held = result["held"]
    last = result["steps"][-1]
    lines = [
        "| figure | value | spread | target | met |",
        "|---|---:|---|---|---|",
        f"| idle EAs held by one daphne process (open after {HOLD_S} s) | {result['open_at_end']:,} | "
        f"{held['established']:,} sockets established on the server | 5,000 | "
        f"{met(result['open_at_end'] >= result['target'])} |",
        f"| memory per connection (RSS growth / connections) | {result['kb_per_connection']:.1f} KB | "
        f"{num(steps['min'], 1)}–{num(steps['max'], 1)} KB per step | < 100 KB | "
        f"{met(result['kb_per_connection'] < TARGET_KB)} |",
        f"| server RSS with {last['connected']:,} EAs | {held['rss'] / 2**20:,.0f} MiB | "
        f"{result['steps'][0]['rss'] / 2**20:,.0f} MiB with {result['steps'][0]['connected']} | | |",
        f"| server CPU while holding them (heartbeats, session checks) | {held['cpu_cores']:.2f} cores | | | |",
        "",
        "| step | connected | server RSS | connect time | HELLOs/s |",
        "|---|---:|---:|---:|---:|",
    ]
    previous = result["steps"][0]["connected"]
    for step in result["steps"][1:]:
        rate = (step["connected"] - previous) / step["seconds"] if step["seconds"] else 0
        lines.append(
            f"| to {step['connected']:,} | {step['connected']:,} | {step['rss'] / 2**20:,.0f} MiB | "
            f"{step['seconds']:.1f} s | {rate:,.0f} |"
        )
        previous = step["connected"]
    lines += [
        "",
        f"Server open-file limit: {result['nofile']:,}. Heartbeats sent while held: {result['heartbeats']:,}. "
        f"Connections closed by the server: {result['closed'] or 'none'}. One run (connecting {TARGET:,} EAs takes "
        "most of the time budget); the spread is over the steps.",
    ]
    return "\n".join(lines) + "\n"
