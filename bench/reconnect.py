"""Reconnect storm (issue 21 item 5): N EAs with access tokens reconnect at once to one fresh daphne process, as after
a deploy: the process each EA's session was on is gone (each HELLO's takeover request meets no responder).

The EAs are `bench.storm_ea.StormEA`s (raw-socket EAs written from docs/protocol.md: what `eaclient.EAClient`
sends in a storm, for about a seventh of its CPU, decision 0033) in `LOAD_PROCESSES` child processes
(bench/reconnect_load.py), each with a live session made by bench.fixtures. They start together; the figure is
the time from the start until the last EA is authenticated (AUTH_RESULT OK) and resynced (RISK_PARAMETERS and
CONFIG_UPDATE received), and HELLOs/s = EAs resynced / that time. The storm and its floor (bench/storm_floor.py)
run in turn, once per run of the suite (3 by default): the report is the median storm's run with the floor run beside
it, and every run's pair. On 2026-12-07 one storm on the same code took 14.0 s and another 23.0 s, its floor 3.9 and
5.4 s: the machine, not the gateway, had changed.

After each storm the same server is stopped with its EAs connected, the deploy's other half (`_drain`): the time until
its drain has closed each with 1012 and recorded each disconnect, and the storm's accounts still online after it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings

from bench import hello_db, profile, storm_floor
from bench.fixtures import accounts_online, sessions_held_by_a_gone_process
from bench.stack import (
    Daphne,
    LoadProcess,
    PostgresWaits,
    cpu_delta,
    listen_overflows,
    machine_busy_s,
    postgres_cpu,
    steal_s,
)
from bench.stats import met, num, percentile

TARGET_EAS = 5_000
TARGET_S = 10.0
TARGET_RATE = 1_000  # token HELLOs/s per process
LOAD_PROCESSES = 4
MAX_CONNECTING = 250  # per load process: sockets between connect and resync at once (the listen backlog)
PROFILE_EAS = 3_000  # the profiled storm: long enough for PROFILE_S of HELLOs (~320/s), before its EAs disconnect
PROFILE_S = 8
CPU_BOUND_SHARE = 0.85  # of the machine's cores busy on average: the storm is said to be bound by CPU
TIMEOUT_S = 120.0  # each EA's time to connect and be resynced before it tries again; the storm gives up after 3
# The same storm on the code before issue 21's HELLO work (commit 020b6e8: 20 database round trips per token HELLO),
# this bench on 2026-12-03, the machine at load average 7.5 from other work. Shown beside each new run.
BEFORE = {"commit": "020b6e8", "eas": 5_000, "all_resynced_s": 259.0, "resync_p50_s": 136.83, "resync_p99_s": 241.62,
          "hellos_per_s": 19.3, "server_cpu_s": 163.7, "load": 7.46}  # fmt: skip


def section(*, eas: list, log_dir: Path, runs: int = 1) -> dict:
    """`runs` times: the storm of TARGET_EAS, then the same storm against an app that does nothing
    (bench/storm_floor.py: what the server stack costs per EA, so the rest is the gateway's); the median storm's
    run stands for the section (`median_round`). Then the EAs' database work alone (bench/hello_db.py); when it
    misses a target, a smaller storm again under py-spy (PROFILE_EAS), sampling the thread that holds the GIL: what
    takes the one core the server's Python can use."""
    rounds = []
    for _ in range(max(1, runs)):  # in turn, so a neighbour's load on the machine hits a storm and its floor alike
        storm = run(eas=eas, log_dir=log_dir)
        storm["floor"] = storm_floor.run(
            count=len(eas[:TARGET_EAS]), load_processes=LOAD_PROCESSES, max_connecting=MAX_CONNECTING,
            timeout_s=TIMEOUT_S, log_dir=log_dir,
        )  # fmt: skip
        rounds.append(storm)
    result = median_round(rounds)
    result["database_work"] = hello_db.run(eas=eas)
    if not all(ok for *_rest, ok in targets(result)) and profile.available():
        out = log_dir / "reconnect-profile.txt"
        profiled = run(eas=eas, log_dir=log_dir, count=PROFILE_EAS, profile_out=out)
        summary = profile.summarise(out, PROFILE_S, first_stages=profile.STORM_GIL_STAGES, gil=True)
        result["profile"] = {"eas": profiled["eas"], "all_resynced_s": profiled["all_resynced_s"], "summary": summary}
    return result


def run(
    *, eas: list, log_dir: Path, count: int = TARGET_EAS, server: type[Daphne] = Daphne, profile_out: Path | None = None
) -> dict:
    """One storm of `count` EAs on a fresh server; with `profile_out`, py-spy samples the thread holding the server's
    GIL for PROFILE_S from the start of the storm (before the EAs disconnect at its end)."""
    eas = eas[:count]
    sessions_held_by_a_gone_process(eas)  # a deploy: the process each EA was on is gone
    daphne = server(log_dir, name="reconnect")
    loads: list[LoadProcess] = []
    try:
        share = -(-len(eas) // LOAD_PROCESSES)
        loads = [
            LoadProcess(
                {"url": daphne.url, "eas": [ea.as_dict() for ea in eas[i : i + share]],
                 "max_connecting": MAX_CONNECTING, "timeout_s": TIMEOUT_S},
                log_dir, f"reconnect-{i // share}", module="bench.reconnect_load",
            )
            for i in range(0, len(eas), share)
        ]  # fmt: skip
        for load in loads:
            load.event(120)  # ready
        threads0 = daphne.thread_cpu()
        cpu0, busy0, steal0, pg0, load0, overflows0, t0 = (
            daphne.cpu_s(),
            machine_busy_s(),
            steal_s(),
            postgres_cpu(),
            sum(load.cpu_s() for load in loads),
            listen_overflows(),
            time.monotonic(),
        )
        recorder = None
        if profile_out is not None:
            profile_out.unlink(missing_ok=True)
            recorder = threading.Thread(
                target=profile.record, args=(daphne.proc.pid, PROFILE_S, profile_out), kwargs={"gil": True}
            )
            recorder.start()
        with PostgresWaits() as pg_waits:
            for load in loads:
                load.go()
            results = [load.event(4 * TIMEOUT_S) for load in loads]
        overflows1 = listen_overflows()
        threads1 = daphne.thread_cpu()
        cpu_s, busy_s, stolen_s, pg_s, load_s, window_s = (
            daphne.cpu_s() - cpu0, machine_busy_s() - busy0, steal_s() - steal0, cpu_delta(pg0, postgres_cpu()),
            sum(load.cpu_s() for load in loads) - load0, time.monotonic() - t0,
        )  # fmt: skip
        if recorder is not None:
            recorder.join(PROFILE_S + 30)
        resync_reads = _resync_reads(daphne)
        drain = _drain(daphne, eas)  # the storm is over: the deploy's other half, after the figures above
        for load in loads:  # the server closed them: each load process ends
            load.command("close")
        for load in loads:
            load.event(60)  # closed
    finally:
        for load in loads:
            load.kill()
        daphne.stop()
    started = min(r["started"] for r in results)
    resynced = [t - started for r in results for t in r["resynced"] if t is not None]
    all_s = max(resynced) if len(resynced) == len(eas) else None
    return {
        "eas": len(eas),
        "resynced": len(resynced),
        "all_resynced_s": all_s,
        "resync_p50_s": percentile(resynced, 50),
        "resync_p99_s": percentile(resynced, 99),
        "hellos_per_s": len(resynced) / max(resynced) if resynced else 0.0,
        "server_cpu_s": cpu_s,
        "cores": {
            "machine": busy_s / window_s,
            "server": cpu_s / window_s,
            "postgres": pg_s / window_s,
            "load": load_s / window_s,
            "host": stolen_s / window_s,  # lent by the hypervisor to other machines (steal): the storm ran slower
        },  # busy on average from the start until every EA had its result
        # the server's threads, user and system CPU, in cores over the same span
        "server_threads": {
            name: [(after - before) / window_s for after, before in zip(threads1[name], threads0[name], strict=True)]
            for name in threads1
        },
        "refused": sum(r["refused"] for r in results),
        "refusals": [x for r in results for x in r["refusals"]][:5],
        "connect_failures": sum(r["connect_failures"] for r in results),
        # SYNs the kernel dropped with the server's accept queue full: each such EA waits 1, 3, 7 s to try again
        "listen_overflows": None if None in (overflows0, overflows1) else overflows1 - overflows0,
        "load_processes": len(loads),
        "pg_waits": pg_waits.result(),  # what the server's PostgreSQL backends were doing during the storm
        "resync_reads": resync_reads,
        "drain": drain,
    }


def _drain(daphne: Daphne, eas: list) -> dict:
    """The deploy's other half: the storm's server is stopped (SIGTERM) with every EA connected. Its drain closes each
    with 1012 and records each disconnect (the account offline unless another session holds it, audited) before it
    logs `drained` (suho/server.py), within SHUTDOWN_DRAIN_S. From its log: how many it closed and the time until
    `drained`; its CPU until then; from the database: the storm's accounts it still shows online."""
    cpu0, cpu_s = daphne.cpu_s(), None
    daphne.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.SHUTDOWN_DRAIN_S + 30
    while cpu_s is None and time.monotonic() < deadline and daphne.proc.poll() is None:
        cpu = daphne.cpu_s()
        if any(m["message"] == "drained" for m in _logged(daphne)):
            cpu_s = cpu - cpu0  # read within 20 ms of the log line
        time.sleep(0.02)
    daphne.stop()
    logged = _logged(daphne)
    told = next((m for m in logged if m["message"].startswith("draining: ")), None)
    drained = next((m for m in logged if m["message"] == "drained"), None)
    return {
        "closed": int(told["message"].split()[1]) if told else 0,
        "drained_s": _seconds_between(told, drained) if told and drained else None,
        "cpu_s": cpu_s,
        "still_open": any("still open after" in m["message"] for m in logged),
        "online_after": accounts_online([ea.account_id for ea in eas]),
        "limit_s": settings.SHUTDOWN_DRAIN_S,
    }


def _logged(daphne: Daphne) -> list[dict]:
    """The server's JSON log records (suho's logging: one object per line)."""
    return [
        json.loads(line) for line in daphne.log_path.read_text(errors="replace").splitlines() if line.startswith("{")
    ]


def _seconds_between(first: dict, then: dict) -> float:
    return (datetime.fromisoformat(then["time"]) - datetime.fromisoformat(first["time"])).total_seconds()


def _resync_reads(server: Daphne) -> dict | None:
    """The server's own count (/metrics) of the resyncs it read and the token HELLOs it claimed, and the database
    round trips each took: several EAs per round trip when they wait for a database thread
    (trading.gateway.SharedRoundTrips). None if it could not be read."""
    names = ("suho_ea_resyncs_total", "suho_ea_resync_reads_total", "suho_ea_token_hellos_total",
             "suho_ea_token_hello_round_trips_total")  # fmt: skip
    try:
        values = {name: int(value) for name, value in server.metrics(*names).items()}
        return {"resyncs": values[names[0]], "reads": values[names[1]], "hellos": values[names[2]],
                "hello_round_trips": values[names[3]]}  # fmt: skip
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench: the server's resync counts could not be read: {type(exc).__name__}: {exc}", flush=True)
        return None


def median_round(rounds: list[dict]) -> dict:
    """The storm run (with its floor) whose time to the last resync is the median, the slower of the middle two for
    an even count; a storm that did not resync every EA counts as the slowest. Every run's figures go with it
    (`rounds`), so the report shows how far they moved."""
    ordered = sorted(rounds, key=lambda r: math.inf if r["all_resynced_s"] is None else r["all_resynced_s"])
    summaries = [
        {"all_resynced_s": r["all_resynced_s"], "resynced": r["resynced"], "hellos_per_s": r["hellos_per_s"],
         "server_cpu_s": r["server_cpu_s"], "floor_all_s": (r.get("floor") or {}).get("all_answered_s"),
         "host_cores": r["cores"].get("host")}
        for r in rounds
    ]  # fmt: skip
    return {**ordered[len(ordered) // 2], "rounds": summaries}


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    done = result["all_resynced_s"]
    return [
        (
            f"Reconnect storm: {result['eas']:,} EAs authenticated and resynced",
            f"{num(done, 1)} s" if done is not None else f"{result['resynced']:,} of {result['eas']:,}",
            f"≤ {TARGET_S:.0f} s for {TARGET_EAS:,}",
            done is not None and done <= TARGET_S and result["eas"] >= TARGET_EAS,
        ),
        (
            "Token HELLOs/s, one process",
            f"{result['hellos_per_s']:,.0f}",
            f"≥ {TARGET_RATE:,}",
            result["hellos_per_s"] >= TARGET_RATE,
        ),
    ]


def markdown(result: dict) -> str:
    done = result["all_resynced_s"]
    b = BEFORE
    lines = [
        f"| figure | value | before (commit {b['commit']}) | target | met |",
        "|---|---:|---:|---|---|",
        f"| {result['eas']:,} EAs with access tokens reconnect at once: the last one authenticated and resynced "
        "(risk parameters and configuration received) | "
        f"{num(done, 1) + ' s' if done is not None else 'not all: ' + format(result['resynced'], ',')} | "
        f"{b['all_resynced_s']:.1f} s | ≤ {TARGET_S:.0f} s | {met(done is not None and done <= TARGET_S)} |",
        f"| … resynced, p50 / p99 of the EAs | {num(result['resync_p50_s'], 2)} s / "
        f"{num(result['resync_p99_s'], 2)} s | {b['resync_p50_s']:.2f} s / {b['resync_p99_s']:.2f} s | | |",
        f"| HELLOs/s (EAs resynced / time to the last) | {result['hellos_per_s']:,.0f} | {b['hellos_per_s']:,.0f} | "
        f"≥ {TARGET_RATE:,} | {met(result['hellos_per_s'] >= TARGET_RATE)} |",
        f"| server CPU for the storm | {result['server_cpu_s']:.1f} s | {b['server_cpu_s']:.1f} s | | |",
        *_resync_reads_row(result),
        *_drain_rows(result),
        *_floor_rows(result),
        *_rounds_row(result),
        "",
        f"Before: {b['eas']:,} EAs, the machine at load average {b['load']} from other work; HELLOs that waited past "
        "the server's 10 s HELLO limit were closed and came back with the client's backoff.",
        "",
        _missed(result),
        "",
        *([table.rstrip("\n"), ""] if (table := hello_db.markdown(result.get("database_work"))) else []),
        f"EAs: `bench.storm_ea.StormEA` (raw-socket EAs written from docs/protocol.md; decision 0033) in "
        f"{result['load_processes']} load processes (bench/reconnect_load.py), at most "
        f"{MAX_CONNECTING} per process between connect and resync at once; one fresh daphne process. Refused (or "
        "ended by an answer the EA could not read): "
        f"{result['refused']} {result['refusals'] or ''}; attempts retried before the resync (connection "
        f"refused or lost, or not resynced within {TIMEOUT_S:.0f} s): {result['connect_failures']}; "
        f"SYNs the kernel dropped with an accept queue full (TcpExt ListenOverflows, this network namespace; a "
        "SYN sent again and dropped again counts again): "
        f"{_overflows(result)}. {_runs_said(result)}",
    ]
    return "\n".join(lines) + "\n"


def _resync_reads_row(result: dict) -> list[str]:
    """How many EAs each of the server's resync reads and HELLO claims served (none for a result from before it was
    counted)."""
    counted = result.get("resync_reads")
    if not counted or not counted["reads"]:
        return []
    rows = [
        f"| … EAs resynced per database read (the server's /metrics: trading.gateway.SharedRoundTrips reads those that "
        f"wait for a database thread together) | {counted['resyncs'] / counted['reads']:.1f} "
        f"({counted['resyncs']:,} in {counted['reads']:,}) | 1 | | |"
    ]
    if counted.get("hello_round_trips"):  # counted since decision 0039
        rows.append(
            f"| … token HELLOs claimed per database round trip (the same, for the claims: decision 0039) | "
            f"{counted['hellos'] / counted['hello_round_trips']:.1f} "
            f"({counted['hellos']:,} in {counted['hello_round_trips']:,}) | 1 | | |"
        )
    return rows


def _drain_rows(result: dict) -> list[str]:
    """The same server stopped after the storm, its EAs connected (`_drain`; none for a result from before it was
    measured)."""
    drain = result.get("drain")
    if not drain:
        return []
    done, cpu_s = drain["drained_s"], drain["cpu_s"]
    within = done is not None and done <= drain["limit_s"] and not drain["still_open"]
    return [
        f"| then the deploy's other half: the same server stopped (SIGTERM) with its {drain['closed']:,} EAs "
        "connected, until each is closed (1012) and its disconnect recorded (offline, audited) | "
        f"{num(done, 1) + ' s' if done is not None else 'not drained'} | | ≤ {drain['limit_s']} s (SHUTDOWN_DRAIN_S) "
        f"| {met(within)} |",
        "| … its server CPU: per EA / in all | "
        + (f"{cpu_s * 1000 / max(drain['closed'], 1):.2f} ms / {cpu_s:.1f} s" if cpu_s is not None else "–")
        + " | | | |",
        f"| … the storm's accounts the database still shows online after it | {drain['online_after']:,} | | 0 "
        f"| {met(drain['online_after'] == 0)} |",
    ]


def _floor_rows(result: dict) -> list[str]:
    """The same storm against the same server with an app that does nothing (bench/storm_floor.py)."""
    floor = result.get("floor")  # results from before it was measured have none
    if not floor:
        return []
    done = floor["all_answered_s"]
    per_ea = floor["server_cpu_s"] * 1000 / floor["eas"]
    return [
        f"| the floor: the same storm against the same server (suho.server: daphne, Twisted, autobahn) with an "
        f"ASGI app that answers each client's first frame with three and does nothing else | "
        f"{num(done, 1) + ' s' if done is not None else 'not all: ' + format(floor['answered'], ',')} | | | |",
        f"| … its server CPU: per EA / the storm's | {per_ea:.2f} ms / {floor['server_cpu_s']:.1f} s | | | |",
    ]


def _rounds_row(result: dict) -> list[str]:
    """Every run's storm and floor, in the order they ran, when there were several."""
    rounds = result.get("rounds") or []  # results from before runs were repeated have none
    if len(rounds) < 2:
        return []
    pairs = ", ".join(
        f"{_seconds_or_count(r['all_resynced_s'], r['resynced'])} / {num(r['floor_all_s'], 1)} s"
        + (f" (host {r['host_cores']:.2f} cores)" if (r.get("host_cores") or 0) >= 0.005 else "")
        for r in rounds
    )
    return [
        f"| each run in turn, the storm / its floor (the cores the hypervisor lent away during the storm: steal) "
        f"| {pairs} | | | |"
    ]


def _seconds_or_count(done: float | None, resynced: int) -> str:
    return f"{num(done, 1)} s" if done is not None else f"{resynced:,} resynced"


def _runs_said(result: dict) -> str:
    count = len(result.get("rounds") or []) or 1
    if count == 1:
        return "One run."
    return (
        f"{count} runs, each storm followed by its floor; the storm's figures above (its times, CPU, cores and "
        "PostgreSQL's waits) are the median storm's run (the slower of the middle two for an even count), the "
        "floor's are the run after it."
    )


def _machine_budget(result: dict) -> str:
    """The machine's CPU per EA, everything on it counted, against what the rate target allows on its cores."""
    cores, count = result["cores"], os.cpu_count() or 1
    window_s = result["server_cpu_s"] / cores["server"] if cores["server"] else 0.0  # the span `cores` averages
    if not window_s:
        return ""
    per_ea = {name: cores[name] * window_s * 1000 / result["eas"] for name in ("machine", "server", "postgres", "load")}
    return (
        f" Everything on the machine together spent {per_ea['machine']:.2f} ms of CPU per EA (the server "
        f"{per_ea['server']:.2f}, PostgreSQL {per_ea['postgres']:.2f}, the load processes {per_ea['load']:.2f}): "
        f"at {count} cores fully busy that is at most {count * 1000 / per_ea['machine']:,.0f} EAs/s, and "
        f"{TARGET_RATE:,}/s needs at most {count * 1000 / TARGET_RATE:.2f} ms per EA, everything included."
    )


def _seconds(value: float | None) -> str:
    """The profiled storm's length: its PROFILE_S window holds only HELLOs if the storm lasts longer."""
    if value is None:
        return "– (not all were)"
    return f"{value:.1f} s" + ("" if value >= PROFILE_S else f", less than the {PROFILE_S} s sampled: its end too")


def _server_threads(result: dict) -> str:
    """Which of the server's threads the storm kept busy (user + system CPU, from /proc)."""
    threads = result.get("server_threads")  # results from before it was measured have none
    if not threads:
        return ""
    (loop_user, loop_sys), (rest_user, rest_sys) = threads["event loop"], threads["other threads"]
    return (
        f" The server's event loop thread used {loop_user + loop_sys:.2f} cores ({loop_sys:.2f} of them in the "
        f"kernel: sockets), its other threads together {rest_user + rest_sys:.2f} ({rest_sys:.2f} in the kernel): "
        "the database threads run the HELLO's token check, claim and resync read; all Python of "
        "the process takes turns on one GIL."
    )


def _pg_waits(result: dict) -> str:
    """What the server's PostgreSQL backends were doing while the storm ran, from pg_stat_activity."""
    waits = result.get("pg_waits")  # results from before it was sampled have none
    if not waits or not waits["rounds"]:
        return ""
    shares = "; ".join(f"{label} {share * 100:.0f}%" for label, share in waits["shares"].items() if share >= 0.005)
    return (
        f" The server's PostgreSQL backends (pg_stat_activity every {waits['interval_s'] * 1000:.0f} ms during the "
        f"storm, {waits['backends']:.1f} on average) were: {shares}."
    )


def _overflows(result: dict) -> str:
    count = result.get("listen_overflows")  # results from before it was counted have none
    return "not measured" if count is None else f"{count:,}"


def _missed(result: dict) -> str:
    done, rate = result["all_resynced_s"], result["hellos_per_s"]
    missed = []
    if done is None:
        missed.append(f"only {result['resynced']:,} of {result['eas']:,} EAs resynced")
    elif done > TARGET_S or result["eas"] < TARGET_EAS:
        missed.append(f"{done / TARGET_S:.1f}× on time")
    if rate < TARGET_RATE:
        missed.append(f"{TARGET_RATE / max(rate, 1):.1f}× on rate")
    if not missed:
        return "Both targets met."
    text = (
        f"Missed: {' and '.join(missed)}. Each token HELLO is at most two database round trips "
        "(tests/gateway/test_hello_round_trips.py; 20 before issue 21; the claim and the resync read are each shared "
        "by the EAs that wait for them together), run by the database threads against a pool "
        f"of 10 connections; PostgreSQL and the {result['load_processes']} load processes share the server's "
        f"{os.cpu_count()} cores."
    )
    if cores := result.get("cores"):
        text += (
            f" During the storm the machine was busy {cores['machine']:.2f} of its {os.cpu_count()} cores on "
            f"average (the server {cores['server']:.2f}, PostgreSQL {cores['postgres']:.2f}, the load processes "
            f"{cores['load']:.2f})"
            + (
                ": the storm is bound by the machine's CPU"
                if cores["machine"] >= CPU_BOUND_SHARE * (os.cpu_count() or 1)
                else ": the storm is bound by the server process, near the one core its GIL lets Python use"
                if cores["server"] >= CPU_BOUND_SHARE - 0.05
                else ": cores were left idle, so part of the wait is not CPU"
            )
            + f"; the server spent {result['server_cpu_s'] * 1000 / max(result['resynced'], 1):.1f} ms of CPU per EA "
            "(handshake, HELLO and resync; the server's drain closes the EAs after the storm, outside these figures)."
        )
    if (floor := result.get("floor")) and floor["all_answered_s"] is not None:
        floor_ms = floor["server_cpu_s"] * 1000 / floor["eas"]
        ours_ms = result["server_cpu_s"] * 1000 / max(result["resynced"], 1) - floor_ms
        text += (
            f" Of that, {floor_ms:.2f} ms is the server stack's own (the floor above, {num(floor['all_answered_s'], 1)}"
            f" s for its storm) and {ours_ms:.2f} ms is the gateway's on top of it (Channels, the consumer and "
            "session, the database threads): at one core, the gateway's part alone would take "
            f"{ours_ms * result['eas'] / 1000:.1f} s of the storm."
        )
    text += _server_threads(result)
    if result.get("cores"):
        text += _machine_budget(result)
    text += _pg_waits(result)
    prof = result.get("profile")
    if not prof or not prof.get("summary"):
        return text + " (No profile of the storm: py-spy is not installed here or could not attach.)"
    summary = prof["summary"]
    if summary.get("gil_held") is None:  # results from before the storm was sampled by the GIL: the text of then
        db_stages = summary["stages"].get("suho-db", {})
        waits = sum(share for stage, share in db_stages.items() if stage.startswith("waiting for"))
        return (
            f"{text}\n\n#### Where the time goes (a storm of {prof['eas']:,} EAs under py-spy)\n\n"
            + profile.markdown(summary)
            + f"\n{waits * 100:.0f} points of the database threads' samples are in psycopg's wait for PostgreSQL's "
            "answer or the pool's wait for a free connection: py-spy counts a thread there as busy while it is "
            "runnable, so on a machine whose cores are taken that is time waiting for PostgreSQL, for a connection "
            "another HELLO holds, and for a core."
        )
    return (
        f"{text}\n\n#### Where the time goes (a storm of {prof['eas']:,} EAs, the last resynced after "
        f"{_seconds(prof.get('all_resynced_s'))}; py-spy samples the thread holding the server's GIL)\n\n"
        + profile.markdown(summary)
        + "\nA database thread waiting for PostgreSQL's answer has let the GIL go and does not show here; nor does "
        "the kernel's time on the sockets (above, from /proc)."
    )
