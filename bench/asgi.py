"""ASGI servers side by side (issue 21 item 2): the same gateway, EAs and load under daphne and under uvicorn.

daphne runs as deployed (`python -m suho.server`: daphne with Suho's limits where frames arrive, decision 0012);
uvicorn with the sans-I/O `websockets` implementation, uvloop and httptools, without those limits (bench.stack.Uvicorn).
Per server, in the same run and alternating: section 2's capacity workload (205 EAs × 25 v1 packets/s), then 60 %
of the capacity that server measured; server CPU per 10,000 committed ticks at both, tick→row and tick→NATS
subscriber latency at 60 %. Everything else is bench.ingest.load_run. Then section 12's reconnect storm (5,000 EAs
with tokens at once) on each server: time until the last is resynced, HELLOs/s, server CPU.

The capacity runs of both servers alternate here even in the whole suite, where section 2 has run daphne through
them already: this machine's speed drifts over a run (a neighbour's load). Section 2's daphne figures, taken minutes
before uvicorn's while the machine ran ~30 % slower (section 1's codec figures), once made uvicorn look 44 % cheaper
per tick; the run before had found 12 %. Section 12's storm is daphne's storm here (the time budget); with --only asgi
daphne's storm runs too.
"""

from __future__ import annotations

from pathlib import Path

from bench import reconnect
from bench.ingest import CAPACITY_EAS, FPS, SUSTAINED_WINDOW_S, _sustained_eas, load_run
from bench.stack import Daphne, Uvicorn
from bench.stats import cell, num, spread

DAPHNE = "daphne (suho.server)"
SERVERS = {DAPHNE: Daphne, "uvicorn (websockets-sansio, uvloop)": Uvicorn}
MATERIAL_SAVING = 0.2  # cheaper per tick by at least this share counts as "materially" (the word)
TARGET_CPU_S_PER_10K = 0.15  # issue 21's goal for server CPU per 10,000 ticks at capacity


def run(*, eas: list, log_dir: Path, runs: int, earlier: dict | None = None) -> dict:
    """`earlier`: this run's results so far. Section 12's storm ("reconnect") is the same storm on daphne, so it
    stands for daphne's here; the capacity and 60 % runs are this section's own, alternating."""
    earlier = earlier or {}
    reused = [name for name in ("reconnect",) if name in earlier]
    results: dict[str, dict[str, list]] = {name: {"capacity": [], "sustained": []} for name in SERVERS}
    for _ in range(max(1, runs - 1)):  # alternating, so a neighbour's load on the machine hits both alike
        for name, server in SERVERS.items():
            capacity = load_run(eas[:CAPACITY_EAS], log_dir, fps=FPS, server=server)
            results[name]["capacity"].append(capacity)
            count = _sustained_eas(capacity["committed_ticks_s"])
            results[name]["sustained"].append(
                load_run(eas[:count], log_dir, fps=FPS, window_s=SUSTAINED_WINDOW_S, server=server)
            )
    storms = {}
    for name, server in SERVERS.items():
        if name == DAPHNE and "reconnect" in reused:
            storms[name] = earlier["reconnect"]
        else:
            storms[name] = reconnect.run(eas=eas, log_dir=log_dir, server=server)
    return {"servers": results, "storms": storms, "reused": reused}


def _median(runs: list[dict], key: str) -> float | None:
    return spread([r.get(key) for r in runs])["median"]


def markdown(result: dict) -> str:
    lines = [
        "| ASGI server | committed at capacity | server CPU per 10k ticks at capacity | at 60 % | "
        "tick→row p99 at 60 % | tick→NATS subscriber p99 at 60 % | connections closed |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, runs in result["servers"].items():
        capacity, sustained = runs["capacity"], runs["sustained"]
        closed = [c for r in capacity + sustained for c in r["closed"] if c] or "none"
        lines.append(
            f"| {name} | {cell(spread([r['committed_ticks_s'] for r in capacity]), 0, ' ticks/s')[0]} | "
            f"{cell(spread([r['server_cpu_s_per_10k'] for r in capacity]), 3, ' s')[0]} | "
            f"{cell(spread([r['server_cpu_s_per_10k'] for r in sustained]), 3, ' s')[0]} | "
            f"{cell(spread([r['p99_ms'] for r in sustained]), 0, ' ms')[0]} | "
            f"{cell(spread([r.get('live_p99_ms') for r in sustained]), 1, ' ms')[0]} | {closed} |"
        )
    if result.get("storms"):
        lines += [
            "",
            "| ASGI server | reconnect storm: EAs resynced | the last one after | HELLOs/s | server CPU, storm |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, storm in result["storms"].items():
            last = storm["all_resynced_s"]
            lines.append(
                f"| {name} | {storm['resynced']:,} of {storm['eas']:,} | "
                f"{f'{last:.1f} s' if last is not None else '–'} | {storm['hellos_per_s']:,.0f} | "
                f"{storm['server_cpu_s']:.1f} s |"
            )
    names = list(result["servers"])
    base, other = (_median(result["servers"][n]["capacity"], "server_cpu_s_per_10k") for n in names)
    verdict = "–"
    if base and other:
        saving = 1 - other / base
        verdict = (
            f"{names[1]} spends {abs(saving):.0%} {'less' if saving > 0 else 'more'} server CPU per tick at capacity "
            f"than {names[0]}: {'materially' if saving >= MATERIAL_SAVING else 'not materially'} cheaper "
            f"(threshold {MATERIAL_SAVING:.0%})."
        )
    runs_each = ", ".join(f"{n} {len(result['servers'][n]['capacity'])}" for n in names)
    return "\n".join(lines) + (
        f"\n\n{verdict} Runs per server: {runs_each} (median when more).{_reused(result)} Same EAs, load processes and "
        "database; "
        f"uvicorn runs without Suho's per-frame rate limits and inbound bounds, so its figure is a floor for what "
        f"it would cost with them; the EA gateway stays on daphne unless the saving is material "
        f"(docs/decisions/0026-asgi-server-for-the-gateway.md).\n"
    )


def _reused(result: dict) -> str:
    """Which of daphne's figures are other sections' runs of this same suite run, in a sentence (or nothing)."""
    if "reconnect" not in result.get("reused", []):
        return ""
    return (
        f" {DAPHNE}'s reconnect storm was not run again here: it is section 12's, from the same run of the suite "
        "(the same workload and server, measured before uvicorn's storm rather than alternating with it); the "
        "capacity and 60 % runs above alternate."
    )


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    rows = []
    for name, runs in result["servers"].items():
        cpu = spread([r["server_cpu_s_per_10k"] for r in runs["capacity"]])["median"]
        rows.append(
            (
                f"server CPU per 10k ticks at capacity ({name})",
                f"{num(cpu, 3)} s",
                f"≤ {TARGET_CPU_S_PER_10K:g} s",
                cpu is not None and cpu <= TARGET_CPU_S_PER_10K,
            )
        )
        storm = result.get("storms", {}).get(name)
        if storm is None:
            continue
        done = storm["all_resynced_s"]
        rows.append(
            (
                f"reconnect storm: {storm['eas']:,} EAs resynced ({name})",
                f"{num(done, 1)} s" if done is not None else f"{storm['resynced']:,} of {storm['eas']:,}",
                f"≤ {reconnect.TARGET_S:.0f} s",
                done is not None and done <= reconnect.TARGET_S and storm["eas"] >= reconnect.TARGET_EAS,
            )
        )
    return rows
