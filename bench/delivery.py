"""Delivery (issue 9 item 4): NATS publish → EA receive latency with 1, 100 and 1,000 EAs connected; a broadcast;
signal POST → EA socket.

One daphne; EAs join in steps (1, then 99, then 900 more, in load processes of ≤ 500). At each step the bench
publishes COMMAND messages (`mt5.command.{account_id}.reconnect`, payload `binproto.to_json` as the gateway expects)
to random connected EAs, one every `INTERVAL_S`, with `issued_us` set just before the publish; the EA records when
the binary frame arrived and ACKs it. Commands touch no database row on the way out (signals are marked SENT, in
the outbound batcher, off the event loop), so they time the delivery path itself; TRADING_SIGNAL is measured
separately at 1,000 EAs. The ACKs of both are recorded by that batcher (trading.outbound_batch). The broadcast
publishes one command to each of the 1,000 EAs back to back (1,000 subjects: the gateway's hub ignores
`mt5.signal.broadcast.*`) and takes the time from the first publish to the last arrival. With 1 and with 1,000 EAs
connected the ML engine's whole path is timed too (issue 21): signals POSTed to /api/signals/ with the tenant's key,
from the request's start to the TRADING_SIGNAL frame at the EA. Publisher and EAs share this machine's clock.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import binproto as bp
from bench import profile
from bench.stack import Daphne, LoadProcess
from bench.stats import cell, met, num, percentile, spread

TARGET_P99_MS = 10
ACK_RATE_PER_S = bp.RATE_LIMITS[bp.MsgType.ACK][0]
TARGET_BROADCAST_MS = 250
LEVELS = (1, 100, 1_000)
MESSAGES = 400
INTERVAL_S = 0.005
BROADCASTS = 5
BROADCAST_SETTLE_S = 2.0  # the 1,000 ACKs are committed (batched writes, ≤ 250 ms apart) before the next broadcast
PROCESS_EAS = 500
API_KEY_HELLOS = 16
POST_LEVELS = (1, 1_000)
PROFILE_S = 8
PROFILED_BROADCASTS = 3
POSTS = 150  # signal POST → EA socket: POSTs per run, by POST_CLIENTS keep-alive clients, at POST_LOAD of capacity
CAPACITY_POSTS = 120  # POSTed back to back by the POST_CLIENTS: the intake's capacity at that level
POST_LOAD = 0.6  # the "at 60 % of capacity"
POST_CLIENTS = 4
POST_SETTLE_S = 1.0  # after the back-to-back POSTs: their deliveries' ACKs are committed (and the idle window's length)
QUOTE_REFRESH_S = 1.0  # the bench writes the targeted accounts' broker quotes this often (their cache TTL is 5 s)


def now_us() -> int:
    return time.time_ns() // 1000


def command(account_id: str) -> tuple[str, bytes, str]:
    issued = now_us()
    message = bp.Command(
        command_id=uuid.uuid4(),
        command=bp.CommandType.RECONNECT,
        ticket=0,
        stop_loss=0.0,
        take_profit=0.0,
        issued_us=issued,
        timestamp_us=issued,
    )
    return f"mt5.command.{account_id}.reconnect", bp.to_json(message).encode(), message.command_id.hex


def signal(account_id: str) -> tuple[str, bytes, str]:
    issued = now_us()
    message = bp.TradingSignal(
        signal_id=uuid.uuid4(),
        action=bp.Action.BUY,
        entry_price=1.0953,
        entry_min=1.0951,
        entry_max=1.0955,
        stop_loss=1.0932,
        take_profit=1.0982,
        volume=0.1,
        risk_percent=1.0,
        sizing_method=bp.SizingMethod.FIXED_LOTS,
        confidence=0.87,
        valid_until_us=issued + 300_000_000,
        ticket=0,
        symbol="EURUSD",
        model_version="bench",
        strategy_name="bench",
        timestamp_us=issued,
    )
    return f"mt5.signal.{account_id}.{message.signal_id}", bp.to_json(message).encode(), message.signal_id.hex


async def _series(nats_url: str, accounts: list[str], build, count: int, interval_s: float) -> list[str]:
    import nats

    client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False)
    refs = []
    try:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for _ in range(count):
            subject, payload, ref = build(random.choice(accounts))
            await client.publish(subject, payload)
            refs.append(ref)
            due += interval_s
            await asyncio.sleep(max(0.0, due - loop.time()))
        await client.flush(timeout=5)
    finally:
        await client.close()
    return refs


async def _broadcast(nats_url: str, accounts: list[str]) -> tuple[int, list[str], float]:
    """One command per account, published back to back; the payloads are built before the clock starts."""
    import nats

    messages = [command(account) for account in accounts]
    client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        started = now_us()
        for subject, payload, _ref in messages:
            await client.publish(subject, payload)
        await client.flush(timeout=5)
        published_ms = (now_us() - started) / 1000
    finally:
        await client.close()
    return started, [ref for _s, _p, ref in messages], published_ms


def ml_keys_create(eas: list) -> dict[str, str]:
    """One ML-engine key per bench tenant (the producer's credential): account id → its tenant's plaintext key."""
    from signals.services import ml_engine_key_create

    by_tenant: dict[str, str] = {}
    for ea in eas:
        if ea.tenant_id not in by_tenant:
            by_tenant[ea.tenant_id] = ml_engine_key_create(tenant_id=ea.tenant_id, label="bench")[1]
    return {ea.account_id: by_tenant[ea.tenant_id] for ea in eas}


def standalone_setup(count: int) -> tuple[list, dict[str, str], Path]:
    """For a bench run on its own (bench.post_cpu, bench.post_steady), after django.setup(): the bench database and
    streams, `count` accounts with their EAs' credentials and the ML engine's keys, and the bench's log directory."""
    from django.conf import settings

    from bench import fixtures
    from suho.streams import streams_ensure

    fixtures.database_create()
    streams_ensure()
    eas = fixtures.eas_create(count=count)
    log_dir = Path(settings.STATE_DIR) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    return eas, ml_keys_create(eas), log_dir


@contextmanager
def broker_quotes_fresh(eas: list):
    """The EAs' EURUSD broker quotes in the cache, rewritten every QUOTE_REFRESH_S while the block runs, by the
    gateway's own cache writer as their ticks would keep them: a signal without a fresh broker quote is refused
    (docs/decisions/0005)."""
    from quotes.ingest import TickRow, broker_quotes_after_commit

    def write() -> None:
        at = now_us()
        broker_quotes_after_commit([
            TickRow(at, ea.tenant_id, ea.account_id, "EURUSD", 1.09500, 1.09512, 12.0, 100, True, "london", True)
            for ea in eas
        ])  # fmt: skip

    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(QUOTE_REFRESH_S):
            write()

    write()
    thread = threading.Thread(target=refresh, name="bench-quotes", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def post_series_cpu(daphne: Daphne, keys: dict[str, str], accounts: list[str], count: int, *, settle_s: float
                    ) -> tuple[list[dict], float]:  # fmt: skip
    """`count` signal POSTs back to back (`_post_series`) and the server's CPU per POST in ms: its CPU (all threads)
    over the series and the `settle_s` after it (what the POSTs set off is done), less its own idle rate (session
    checks, heartbeats) measured over the `settle_s` before."""
    cpu_at = daphne.cpu_s()
    time.sleep(settle_s)
    idle_rate = (daphne.cpu_s() - cpu_at) / settle_s
    cpu_at, started = daphne.cpu_s(), time.monotonic()
    results = _post_series(daphne.port, keys, accounts, count, 0.0)
    time.sleep(settle_s)
    busy_s = daphne.cpu_s() - cpu_at - idle_rate * (time.monotonic() - started)
    return results, busy_s * 1000 / count


def _post_cpu_at(result: dict, level: int) -> float | None:
    """The CPU per POST at `level`, as run() keeps it or as results.json gives it back (its keys are text)."""
    cpu = result.get("post_cpu_ms", {})
    return cpu.get(level, cpu.get(str(level)))


def _capacity(results: list[dict]) -> float:
    """Signal POSTs answered 201 per second, from the first request's start to the last answer."""
    created = [r for r in results if r.get("http_status") == 201]
    if len(created) < 2:
        raise RuntimeError(f"delivery: signal POSTs failed: {sorted({r.get('error', '')[:120] for r in results})}")
    span_us = max(r["answered_us"] for r in created) - min(r["sent_us"] for r in results)
    return len(created) / (span_us / 1e6)


def _post_series(port: int, keys: dict[str, str], accounts: list[str], count: int, interval_s: float) -> list[dict]:
    """`count` market signals POSTed to /api/signals/ as the ML engine sends them (its key, seed §5.2 JSON), one
    every `interval_s` (0: as fast as the POST_CLIENTS keep-alive HTTP connections are answered) to a random
    account. Each result: when the request started and was answered, and the server's signal id, which the EA's
    TRADING_SIGNAL carries."""
    local = threading.local()

    def post(account_id: str) -> dict:
        body = json.dumps({
            "account_id": account_id, "symbol": "EURUSD", "action": "BUY", "volume": 0.01, "stop_loss": 1.09,
            "take_profit": 1.1, "strategy_name": "bench", "metadata": {"polygon_bid": 1.095, "polygon_ask": 1.0951},
        })  # fmt: skip
        headers = {"Authorization": f"Bearer {keys[account_id]}", "Content-Type": "application/json"}
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent = now_us()
        try:
            local.conn.request("POST", "/api/signals/", body, headers)
            response = local.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            local.conn = None
            return {"sent_us": sent, "error": repr(exc)}
        result = {"sent_us": sent, "answered_us": now_us(), "http_status": response.status}
        if response.status != 201:
            return result | {"error": data[:300].decode(errors="replace")}
        created = json.loads(data)
        return result | {"ref": uuid.UUID(created["signal_id"]).hex, "status": created["status"]}

    with ThreadPoolExecutor(POST_CLIENTS, thread_name_prefix="bench-post") as pool:
        futures, due = [], time.monotonic()
        for _ in range(count):
            futures.append(pool.submit(post, random.choice(accounts)))
            due += interval_s
            time.sleep(max(0.0, due - time.monotonic()))
        return [future.result() for future in futures]


def run(*, eas: list, log_dir: Path, runs: int) -> dict:
    from django.conf import settings

    nats_url = settings.NATS_URL
    daphne = Daphne(log_dir, name="delivery")
    loads: list[LoadProcess] = []
    phases: dict[str, str] = {}  # ref → phase
    broadcasts: list[tuple[int, list[str], float]] = []
    posts: dict[str, list[dict]] = {}  # "post/<level>/<run>" → _post_series results
    post_capacity: dict[int, float] = {}  # level → signal POSTs/s the server answered back to back
    post_cpu_ms: dict[int, float] = {}  # level → the server's CPU per signal POST in that series, less its idle work
    post_gc: dict[int, dict] = {}  # level → the server's cyclic-collector pauses over its POST latency runs
    setup = []
    ml_keys = ml_keys_create(eas[: LEVELS[-1]])
    try:
        keyed = LoadProcess(
            {
                "url": daphne.url,
                "eas": [ea.as_dict() for ea in eas[-API_KEY_HELLOS:]],
                "use_api_key": True,
                "connect_concurrency": API_KEY_HELLOS,
            },
            log_dir,
            "delivery-apikey",
        )
        ready = keyed.event(120)
        setup.append(
            {
                "what": f"{ready['connected']} × HELLO with an API key (Argon2), concurrently",
                "seconds": ready["connect_s"],
                "per_s": ready["connected"] / ready["connect_s"],
            }
        )
        keyed.stop()
        connected: list[str] = []
        for level in LEVELS:
            new = eas[len(connected) : level]
            batch = [
                LoadProcess(
                    {
                        "url": daphne.url,
                        "eas": [ea.as_dict() for ea in new[i : i + PROCESS_EAS]],
                        "connect_concurrency": 20,
                        # as an EA does (docs/protocol.md §6): finance and positions after HELLO, finance every
                        # 30 s; the risk gate reads the drawdown of that snapshot on every signal POST
                        "on_connect": True,
                        "finance_s": 30.0,
                    },
                    log_dir,
                    f"delivery-{level}-{i}",
                )
                for i in range(0, len(new), PROCESS_EAS)
            ]
            loads += batch
            ready = [load.event(180) for load in batch]
            if sum(r["connected"] for r in ready) != len(new):
                raise RuntimeError(
                    f"delivery: only {sum(r['connected'] for r in ready)} of {len(new)} EAs connected "
                    f"({[r['failures'] for r in ready]})"
                )
            seconds = max(r["connect_s"] for r in ready)
            setup.append(
                {
                    "what": f"{len(new)} × HELLO with an access token (to {level:,} connected)",
                    "seconds": seconds,
                    "per_s": len(new) / seconds,
                }
            )
            connected += [ea.account_id for ea in new]
            time.sleep(1)
            # One EA answers every message with an ACK: above its per-kind limit (docs/protocol.md §9) the server
            # rightly closes it, so at that level the series is paced at 80 % of the ACK rate limit.
            interval = max(INTERVAL_S, 1 / (0.8 * ACK_RATE_PER_S) / len(connected))
            for r in range(runs):
                for ref in asyncio.run(_series(nats_url, connected, command, MESSAGES, interval)):
                    phases[ref] = f"command/{level}/{r}"
                time.sleep(0.5)
            if level in POST_LEVELS:
                with broker_quotes_fresh(eas[: len(connected)]):  # the connected EAs, in joining order
                    # the settle: the EAs' ACKs arrive and the SENT and ACK marks are committed
                    results, post_cpu_ms[level] = post_series_cpu(daphne, ml_keys, connected, CAPACITY_POSTS,
                                                                  settle_s=POST_SETTLE_S)  # fmt: skip
                    post_capacity[level] = _capacity(results)
                    gc_before = daphne.gc_pauses()
                    for r in range(runs):
                        posts[f"post/{level}/{r}"] = _post_series(
                            daphne.port, ml_keys, connected, POSTS, 1 / (POST_LOAD * post_capacity[level])
                        )
                        time.sleep(0.5)
                    gc_after = daphne.gc_pauses()
                    post_gc[level] = {key: gc_after[key] - gc_before[key] for key in gc_after}
        for r in range(runs):
            for ref in asyncio.run(_series(nats_url, connected, signal, MESSAGES, INTERVAL_S)):
                phases[ref] = f"signal/{len(connected)}/{r}"
            time.sleep(0.5)
        time.sleep(BROADCAST_SETTLE_S)
        cpu_at = daphne.cpu_s()
        time.sleep(BROADCAST_SETTLE_S)  # the server's own idle work (session checks) over one settle window
        idle_cpu_ms = (daphne.cpu_s() - cpu_at) * 1000
        for _ in range(BROADCASTS):
            cpu_at = daphne.cpu_s()
            broadcasts.append(asyncio.run(_broadcast(nats_url, connected)))
            time.sleep(BROADCAST_SETTLE_S)  # the 1,000 ACKs arrive and are committed within it
            broadcasts[-1] += ((daphne.cpu_s() - cpu_at) * 1000,)
        profiled = post_profile = None
        if profile.available():
            profiled = _profile_broadcasts(daphne, nats_url, connected, log_dir)
            with broker_quotes_fresh(eas[: len(connected)]):
                post_profile = _profile_posts(daphne, ml_keys, connected, 1 / (POST_LOAD * post_capacity[LEVELS[-1]]),
                                              log_dir)  # fmt: skip
        results = [load.stop() for load in loads]
    finally:
        for load in loads:
            load.kill()
        daphne.stop()
    received = {ref: (issued, got) for res in results for ref, issued, got in res["received"]}
    return {
        "levels": LEVELS,
        "runs": runs,
        "setup": setup,
        **_phases(phases, received),
        "posts": _posts(posts, received),
        "post_capacity": post_capacity,
        "post_cpu_ms": post_cpu_ms,
        "post_gc": post_gc,
        "broadcasts": [
            _broadcast_result(refs, started, received) | {"published_ms": published_ms, "cpu_ms": cpu_ms - idle_cpu_ms}
            for started, refs, published_ms, cpu_ms in broadcasts
        ],
        "idle_cpu_ms": idle_cpu_ms,
        "closed": [res["closed"] for res in results if res["closed"]],
        "profile": profiled,
        "post_profile": post_profile,
    }


def _post_cpu_why(result: dict) -> str:
    """The POST's CPU against the goal: at 60 % of capacity a POST waits behind others for the one core the
    process's threads share, so its p99 is several times its own CPU."""
    cpu_ms = _post_cpu_at(result, 1000)
    if cpu_ms is None:
        return ""
    why = (f" Each POST costs the server {cpu_ms:.1f} ms of CPU (row above), under one GIL: at {POST_LOAD:.0%} of "
           "capacity, POSTs queue for it, and the p99 is several times that.")  # fmt: skip
    paused = result.get("post_gc", {}).get(1000, result.get("post_gc", {}).get("1000"))
    if paused is not None:
        why += (
            f" The server's cyclic garbage collector paused it {paused['count']:.0f} "
            f"times in those runs, {paused['seconds'] * 1000:.0f} ms in all, {paused['over_5ms']:.0f} of them "
            "over 5 ms (tests/signals/test_signal_post_garbage.py: a signal POST leaves no reference cycles for it)."
        )
    return why


def _profile_posts(daphne: Daphne, keys: dict[str, str], connected: list[str], interval_s: float, log_dir: Path
                   ) -> dict | None:  # fmt: skip
    """py-spy on the server during one more signal POST series to the connected EAs (not counted in the figures),
    its stages split along the signal's path (profile.SIGNAL_POST_STAGES)."""
    return profile.record_during(
        daphne.proc.pid, POSTS * interval_s, log_dir / "delivery-post-profile.txt",
        lambda: _post_series(daphne.port, keys, connected, POSTS, interval_s),
        request_stages=profile.SIGNAL_POST_STAGES,
    )  # fmt: skip


def _profile_broadcasts(daphne: Daphne, nats_url: str, connected: list[str], log_dir: Path) -> dict | None:
    """py-spy on the server while it delivers PROFILED_BROADCASTS more broadcasts (not counted in the figures)."""

    def broadcasts() -> None:
        for _ in range(PROFILED_BROADCASTS):
            asyncio.run(_broadcast(nats_url, connected))
            time.sleep(BROADCAST_SETTLE_S)

    return profile.record_during(daphne.proc.pid, PROFILE_S, log_dir / "delivery-profile.txt", broadcasts)


def _phases(phases: dict[str, str], received: dict) -> dict:
    by_phase: dict[str, list[float]] = {}
    sent: dict[str, int] = {}
    for ref, phase in phases.items():
        sent[phase] = sent.get(phase, 0) + 1
        if ref in received:
            issued, got = received[ref]
            by_phase.setdefault(phase, []).append((got - issued) / 1000)
    per_run = {
        phase: {
            "sent": sent[phase],
            "received": len(by_phase.get(phase, [])),
            "p50_ms": percentile(by_phase.get(phase, []), 50),
            "p99_ms": percentile(by_phase.get(phase, []), 99),
            "max_ms": max(by_phase.get(phase, [0])),
        }
        for phase in sent
    }
    return {"per_run": per_run}


def _posts(posts: dict[str, list[dict]], received: dict) -> dict:
    """Per run: POST start → TRADING_SIGNAL at the EA and POST start → 201, p50/p99 in ms; what was refused. Each
    POST's own figures are kept too (`samples`: start from the run's first, to the EA, to the 201, in ms), so a run
    whose tail stands out can be taken apart afterwards from .state/bench/results.json."""
    out = {}
    for phase, results in posts.items():
        created = [r for r in results if r.get("http_status") == 201]
        to_ea = [(received[r["ref"]][1] - r["sent_us"]) / 1000 for r in created if r["ref"] in received]
        first_us = min((r["sent_us"] for r in results), default=0)
        answered = [(r["answered_us"] - r["sent_us"]) / 1000 for r in created]
        out[phase] = {
            "sent": len(results),
            "created": len(created),
            "rejected": sum(1 for r in created if r["status"] == "rejected"),
            "delivered": len(to_ea),
            "errors": sorted({r.get("error", "")[:120] for r in results if "error" in r})[:3],
            "p50_ms": percentile(to_ea, 50),
            "p99_ms": percentile(to_ea, 99),
            "answer_p50_ms": percentile(answered, 50),
            "answer_p99_ms": percentile(answered, 99),
            "samples": [_post_sample(r, received, first_us) for r in created],
        }
    return out


def _post_sample(result: dict, received: dict, first_us: int) -> list:
    """[start after the run's first POST, POST → EA (None: never arrived), POST → 201], in ms."""
    arrived = received.get(result["ref"])
    return [
        round((result["sent_us"] - first_us) / 1000, 2),
        round((arrived[1] - result["sent_us"]) / 1000, 3) if arrived else None,
        round((result["answered_us"] - result["sent_us"]) / 1000, 3),
    ]


def _broadcast_result(refs: list[str], started: int, received: dict) -> dict:
    arrivals = [received[ref][1] for ref in refs if ref in received]
    return {
        "sent": len(refs),
        "received": len(arrivals),
        "last_ms": (max(arrivals) - started) / 1000 if arrivals else None,
        "median_ms": (percentile(arrivals, 50) - started) / 1000 if arrivals else None,
    }


def _group(result: dict, prefix: str) -> list[dict]:
    return [v for k, v in result["per_run"].items() if k.startswith(prefix + "/")]


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    p99 = spread([r["p99_ms"] for r in _group(result, "command/1000")])["median"]
    last = spread([b["last_ms"] for b in result["broadcasts"]])["median"]
    post = spread([v["p99_ms"] for k, v in result.get("posts", {}).items() if k.startswith("post/1000/")])["median"]
    return [
        (
            "Signal POST → EA socket p99, 1,000 EAs connected",
            f"{num(post, 1)} ms",
            "< 10 ms",
            post is not None and post < TARGET_P99_MS,
        ),
        ("Delivery p99, 1,000 EAs connected", f"{num(p99, 1)} ms", "< 10 ms", p99 is not None and p99 < TARGET_P99_MS),
        (
            "Broadcast to 1,000 EAs, last one",
            f"{num(last)} ms",
            "< 250 ms",
            last is not None and last < TARGET_BROADCAST_MS,
        ),
    ]


def markdown(result: dict) -> str:
    lines = ["| figure | median | spread | target | met |", "|---|---:|---|---|---|"]
    for level in result["levels"]:
        group = _group(result, f"command/{level}")
        delivered = f"{sum(g['received'] for g in group)}/{sum(g['sent'] for g in group)} delivered"
        p50, p99 = spread([g["p50_ms"] for g in group]), spread([g["p99_ms"] for g in group])
        eas = f"{level:,} EA{'s' if level != 1 else ''} connected"
        lines.append(f"| command p50, {eas} | {' | '.join(cell(p50, 2, ' ms'))} | | |")
        ok = p99["median"] is not None and p99["median"] < TARGET_P99_MS
        lines.append(f"| command p99, {eas} ({delivered}) | {' | '.join(cell(p99, 2, ' ms'))} | < 10 ms | {met(ok)} |")
    group = _group(result, "signal")
    delivered = f"{sum(g['received'] for g in group)}/{sum(g['sent'] for g in group)} delivered"
    p50, p99 = spread([g["p50_ms"] for g in group]), spread([g["p99_ms"] for g in group])
    lines.append(f"| trading signal p50, {result['levels'][-1]:,} EAs | {' | '.join(cell(p50, 2, ' ms'))} | | |")
    lines.append(
        f"| trading signal p99, {result['levels'][-1]:,} EAs ({delivered}) | {' | '.join(cell(p99, 2, ' ms'))}"
        f" | < 10 ms | {met(p99['median'] is not None and p99['median'] < TARGET_P99_MS)} |"
    )
    for level in POST_LEVELS if result.get("posts") else ():
        group = [v for k, v in result["posts"].items() if k.startswith(f"post/{level}/")]
        eas = f"{level:,} EA{'s' if level != 1 else ''} connected"
        delivered = f"{sum(g['delivered'] for g in group)}/{sum(g['sent'] for g in group)} delivered"
        p50, p99 = spread([g["p50_ms"] for g in group]), spread([g["p99_ms"] for g in group])
        lines.append(f"| signal POST → EA socket p50, {eas} | {' | '.join(cell(p50, 1, ' ms'))} | | |")
        ok = p99["median"] is not None and p99["median"] < TARGET_P99_MS
        lines.append(
            f"| signal POST → EA socket p99, {eas} ({delivered}) | {' | '.join(cell(p99, 1, ' ms'))} | < 10 ms | "
            f"{met(ok)} |"
        )
        answer = spread([g["answer_p99_ms"] for g in group])
        lines.append(f"| … POST → its 201 p99, {eas} | {' | '.join(cell(answer, 1, ' ms'))} | | |")
        cpu_ms = _post_cpu_at(result, level)
        if cpu_ms is not None:
            lines.append(f"| … server CPU per signal POST, {eas} (back to back, delivery and ACK included) | "
                         f"{cpu_ms:.2f} ms | 1 series | | |")  # fmt: skip
        paused = result.get("post_gc", {}).get(level, result.get("post_gc", {}).get(str(level)))
        if paused is not None:
            lines.append(
                f"| … the server's cyclic garbage collector during those {len(group)} runs (/metrics "
                f"`suho_gc_pause_seconds`; each pause holds every thread): pauses / in all / over 5 ms | "
                f"{paused['count']:.0f} / {paused['seconds'] * 1000:.0f} ms / {paused['over_5ms']:.0f} | "
                f"{sum(g['sent'] for g in group)} POSTs | | |"
            )
    last = spread([b["last_ms"] for b in result["broadcasts"]])
    half = spread([b["median_ms"] for b in result["broadcasts"]])
    delivered = f"{sum(b['received'] for b in result['broadcasts'])}/{sum(b['sent'] for b in result['broadcasts'])}"
    lines.append(
        f"| broadcast to {result['levels'][-1]:,} EAs: half have it | {' | '.join(cell(half, 0, ' ms'))} | | |"
    )
    published = spread([b["published_ms"] for b in result["broadcasts"]])
    lines.append(
        f"| broadcast: publishing the {result['levels'][-1]:,} messages (bench → NATS, flushed) | "
        f"{' | '.join(cell(published, 0, ' ms'))} | | |"
    )
    if all("cpu_ms" in b for b in result["broadcasts"]):
        cpu = spread([b["cpu_ms"] for b in result["broadcasts"]])
        lines.append(
            f"| broadcast: server CPU for the {result['levels'][-1]:,} deliveries and their ACKs (all threads, "
            f"less {result['idle_cpu_ms']:.0f} ms idle per {BROADCAST_SETTLE_S} s) | "
            f"{' | '.join(cell(cpu, 0, ' ms'))} | | |"
        )
    lines.append(
        f"| broadcast to {result['levels'][-1]:,} EAs: the last has it ({delivered} delivered) | "
        f"{' | '.join(cell(last, 0, ' ms'))} | < 250 ms | "
        f"{met(last['median'] is not None and last['median'] < TARGET_BROADCAST_MS)} |"
    )
    lines += ["", "Set-up (not part of the latency figures):", "", "| step | seconds | per second |", "|---|---:|---:|"]
    lines += [f"| {s['what']} | {s['seconds']:.2f} | {s['per_s']:,.0f} |" for s in result["setup"]]
    lines += [
        "",
        f"Method: {MESSAGES} messages per run, one every {INTERVAL_S * 1000:.0f} ms to a random connected EA (every "
        f"{1000 / (0.8 * ACK_RATE_PER_S):.0f} ms with 1 EA: its ACKs stay under the ACK rate limit), "
        f"{result['runs']} runs per level (p50/p99 per run; median and min–max over runs); {BROADCASTS} broadcasts. "
        f"Connections closed by the server: {result['closed'] or 'none'}.",
    ]
    if result.get("posts"):
        runs = result["posts"].values()
        capacities = ", ".join(
            f"{rate:.0f}/s with {int(level):,} EA{'s' if int(level) != 1 else ''}"
            for level, rate in result.get("post_capacity", {}).items()
        )
        errors = sorted({e for r in runs for e in r["errors"]}) or "none"
        lines += [
            "",
            f"Signal POST → EA socket: {POSTS} market signals per run to random connected EAs, POSTed to "
            f"`/api/signals/` with the tenant's ML-engine key from {POST_CLIENTS} keep-alive connections at "
            f"{POST_LOAD:.0%} of the capacity measured at that level just before ({capacities}: {CAPACITY_POSTS} "
            "POSTs back to back, signals answered 201 per second); from the start of the request to the "
            "TRADING_SIGNAL frame's arrival at the EA (the figure the seed's < 10 ms is about), and to the 201. "
            "The bench keeps the accounts' broker quotes fresh in the cache; no reference feed runs; each EA sends its "
            "finance and positions after HELLO and its finance every 30 s, as eaclient does (the risk gate reads its "
            "drawdown). Refused by the risk gate: "
            f"{sum(r['rejected'] for r in runs)}; other answers: {errors}. Server CPU per signal POST: the daphne "
            f"process's (all threads) over the back-to-back series and the {POST_SETTLE_S:.0f} s after it (the "
            f"deliveries' ACKs committed), less its own idle rate over the {POST_SETTLE_S:.0f} s before, per POST: "
            "a figure of work rather than of waiting, so it moves less than the latencies between runs.",
        ]
    post_p99 = spread([v["p99_ms"] for k, v in result.get("posts", {}).items() if k.startswith("post/1000/")])["median"]
    if post_p99 is not None and post_p99 >= TARGET_P99_MS:
        lines += [
            "",
            f"Signal POST → EA socket misses the seed's < {TARGET_P99_MS} ms p99 by {post_p99 / TARGET_P99_MS:.1f}× "
            f"with 1,000 EAs connected ({post_p99:.0f} ms). NATS → EA alone (the trading-signal rows above) is within "
            "it, and the EA's process hands the message to its socket right at the commit (decision 0037): the time "
            "is the request's own, before its commit releases the message." + _post_cpu_why(result),
        ]
    if result.get("post_profile"):
        lines += [
            "",
            f"#### Where the time goes (one more signal POST series: {POSTS} POSTs, {result['levels'][-1]:,} EAs "
            "connected)",
            "",
            profile.markdown(result["post_profile"]),
        ]
    if result.get("profile") and not all(ok for *_rest, ok in targets(result)):
        lines += [
            "",
            f"#### Where the time goes ({PROFILED_BROADCASTS} more broadcasts to 1,000 EAs, "
            f"{BROADCAST_SETTLE_S} s apart)",
            "",
            profile.markdown(result["profile"]),
        ]
    return "\n".join(lines) + "\n"
