"""Simulated EAs for the benchmarks, in a process of their own: real WebSockets (`websockets`), binproto, no Django.
Each session is opened as every EA opens it (eaclient's `session_open` and HELLO); the load itself is pre-encoded
frames with the timestamp patched in, so that thousands of EAs in one process measure the server, not this process
(eaclient's `EAClient`, which builds each frame from its dataclasses, is the EA to use anywhere else).

    python -m bench.ea_load CONFIG.json     (started by bench.run: JSON lines on stdout, commands on stdin)

Every EA connects to /ws/ea/, sends HELLO with its access token and waits for AUTH_RESULT OK. Then, per config:
- `fps` > 0: v1 price packets (144 bytes, 8 symbols) at `fps`, as binary frames or (`json`) their JSON text form.
  The header timestamp is the send time (µs), which the server stores as the row's `time`.
- `probe_dsn`: the first EA polls PostgreSQL every `probe_interval_s` for its own EURUSD rows; a row's tick→row
  latency is the start of the first poll that sees it minus its send time (an upper bound; resolution one interval).
- `heartbeat_s` / `finance_s` / `positions_s` > 0: HEARTBEAT / ACCOUNT_FINANCE / POSITIONS at that period, random
  phase (the protocol's 30 s keep-alive); `on_connect`: ACCOUNT_FINANCE and POSITIONS once right after HELLO.
- always: every COMMAND and TRADING_SIGNAL received is recorded (id, the time it was issued, the time it arrived)
  and acknowledged with ACK, as an EA must (the server closes a connection with 256 unacknowledged messages).

stdout: `{"event": "ready", ...}` once all EAs tried to connect, `{"event": "result", ...}` after `stop` on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import uvloop
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import binproto as bp
from bench.storm_ea import OP_BINARY, client_frame
from eaclient.client import ack_build, hello_build, session_open

CONNECT_TIMEOUT_S = 30
LOST_AFTER_S = 10.0  # a probed tick not visible after this long is counted lost, not waited for
SYMBOL_PRICES = {1: 1.09512, 2: 1.26843, 3: 149.321, 4: 0.88412, 5: 0.65523, 6: 1.36012, 7: 0.60218, 8: 2351.42}


def now_us() -> int:
    return time.time_ns() // 1000


def ws_frame_bytes(payload: int) -> int:
    """Bytes a client frame takes on the wire (RFC 6455: 2-byte header, extended length, 4-byte mask), TCP excluded."""
    return payload + 2 + 4 + (0 if payload < 126 else 2 if payload < 65536 else 8)


def price_message(seed: int, timestamp_us: int) -> bp.PriceStream:
    """The legacy EA's packet: 8 symbols, v1, as the server will decode it (prices quantised to 1e-5)."""
    offset = (seed % 97) * 1e-5
    ticks = tuple(
        bp.PriceTick(sid, round(price + offset, 5), round(price + offset + 0.00018, 5), 18, server_id=1)
        for sid, price in SYMBOL_PRICES.items()
    )
    return bp.decode(bp.encode(bp.PriceStream(ticks, bp.V1, timestamp_us), pad=True))


class PriceFrames:
    """Frames for one EA with a fresh timestamp each: bytes patched in place, or the JSON text with it replaced.

    A binary one also as the whole masked WebSocket frame (`wire`), which the sender writes to the socket itself:
    with websockets' send() on asyncio's loop the two load processes used 0.33 of the machine's 2 cores at the
    capacity load (64 µs a frame, the kernel's loopback TCP included), taken from the server they measure; written so
    on uvloop, 0.23. The frame is the one send() makes (FIN, binary, masked, 16-bit length) but for its
    masking key, chosen once per EA rather than per frame (RFC 6455 §5.3 asks for a fresh one; a server cannot
    tell, and Suho's does not care)."""

    def __init__(self, seed: int, as_json: bool):
        self.as_json = as_json
        message = price_message(seed, 1)
        self.binary = bp.encode(message, pad=True)
        text = bp.to_json(message)
        marker = '"timestamp":1,'
        assert text.count(marker) == 1
        self.head, self.tail = text.split(marker)
        mask, size = os.urandom(4), len(self.binary)
        assert 126 <= size < 65536 and self.binary[8:16] == (1).to_bytes(8, "little")  # the header's timestamp
        frame = client_frame(OP_BINARY, self.binary, mask)  # 4-byte header, the mask, then the masked payload
        self.wire_head, self.wire_tail = frame[:16], frame[24:]
        self.timestamp_mask = int.from_bytes(mask * 2, "little")  # payload bytes 8–15 are masked by key bytes 0–3, 0–3

    def build(self, timestamp_us: int) -> bytes | str:
        if self.as_json:
            return f'{self.head}"timestamp":{timestamp_us},{self.tail}'
        return self.binary[:8] + timestamp_us.to_bytes(8, "little") + self.binary[16:]

    def wire(self, timestamp_us: int) -> bytes:
        """build()'s binary frame, masked and framed, ready for the socket."""
        return self.wire_head + (timestamp_us ^ self.timestamp_mask).to_bytes(8, "little") + self.wire_tail


@dataclass
class Stats:
    frames: int = 0
    ticks: int = 0
    ticks_by_100ms: Counter = field(default_factory=Counter)  # send time // 100 ms → ticks sent then
    payload_bytes: int = 0
    wire_bytes: int = 0
    late_resets: int = 0
    heartbeats: int = 0
    finances: int = 0
    positions: int = 0
    errors: Counter = field(default_factory=Counter)
    closed: Counter = field(default_factory=Counter)
    received: list = field(default_factory=list)  # [ref id hex, issued µs, received µs]
    latencies: list = field(default_factory=list)  # [send µs, tick→row µs]
    probe_lost: list = field(default_factory=list)  # send µs of probed ticks not visible within LOST_AFTER_S
    probe_pending: dict = field(default_factory=dict)  # send µs → None: sent, not visible yet
    probe_polls: int = 0


async def ea_connect(url: str, ea: dict, use_api_key: bool) -> ClientConnection:
    """Connected and authenticated (eaclient.AuthRefused otherwise): with the API key, or the access token of the
    session made in bulk for it. No keepalive pings and no proxy: thousands of sockets on loopback."""
    secret = {"api_key": ea["api_key"]} if use_api_key else {"access_token": ea["access_token"]}
    hello = hello_build(UUID(ea["account_id"]), **secret, ea_version="bench-1.0")
    ws, _result = await session_open(
        url, hello, timeout_s=CONNECT_TIMEOUT_S, proxy=None, ping_interval=None, close_timeout=2, max_size=2**20
    )
    return ws


async def reader(ws: ClientConnection, stats: Stats, ack: bool = True) -> None:
    """Drain server frames; record and ACK commands and signals."""
    try:
        async for frame in ws:
            if not isinstance(frame, bytes):
                continue
            received_us = now_us()
            message = bp.decode(frame)
            if isinstance(message, bp.Command | bp.TradingSignal):
                ref = message.command_id if isinstance(message, bp.Command) else message.signal_id
                issued = message.issued_us if isinstance(message, bp.Command) else message.timestamp_us
                stats.received.append([ref.hex, issued, received_us])
                reply = ack_build(message.TYPE, ref_id=ref, status=bp.AckStatus.RECEIVED)
                if ack:
                    await ws.send(bp.encode(reply))
            elif isinstance(message, bp.Error):
                stats.errors[message.code.name] += 1
            elif isinstance(message, bp.SessionClosing):
                stats.errors[f"closing:{message.close_code.name}"] += 1
    except ConnectionClosed as exc:
        stats.closed[str(exc.rcvd.code if exc.rcvd else "no-close-frame")] += 1


async def price_sender(ws: ClientConnection, frames: PriceFrames, fps: float, stats: Stats, probe: dict | None):
    """Open loop: one packet every 1/fps s on an absolute schedule; more than 1 s behind, the schedule restarts."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / fps
    due = loop.time() + random.random() * interval
    with contextlib.suppress(ConnectionClosed):
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_us = now_us()
            if not frames.as_json and ws.protocol.state is State.OPEN and not ws.paused:
                ws.transport.write(frames.wire(sent_us))
                size = len(frames.binary)
            else:  # JSON, or the socket's buffer full or the connection ending: send() waits or raises
                data = frames.build(sent_us)
                await ws.send(data)
                size = len(data) if isinstance(data, bytes) else len(data.encode())
            stats.frames += 1
            stats.ticks += 8
            stats.ticks_by_100ms[sent_us // 100_000] += 8
            stats.payload_bytes += size
            stats.wire_bytes += ws_frame_bytes(size)
            if probe is not None:
                probe[sent_us] = None
            due += interval
            if loop.time() - due > 1.0:
                stats.late_resets += 1
                due = loop.time()


async def periodic(ws: ClientConnection, period_s: float, build, counter: str, stats: Stats) -> None:
    await asyncio.sleep(random.random() * period_s)
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.send(bp.encode(build()))
            setattr(stats, counter, getattr(stats, counter) + 1)
            await asyncio.sleep(period_s)


def heartbeat() -> bp.Heartbeat:
    return bp.Heartbeat(
        connection_status=bp.ConnectionStatus.ONLINE,
        latency_ms=12,
        uptime_s=3600,
        mt5_build=4755,
        terminal_connected=True,
        trade_allowed=True,
        error_count=0,
        last_error_code=0,
        last_error_message="",
        timestamp_us=now_us(),
    )


def finance() -> bp.AccountFinance:
    return bp.AccountFinance(
        balance=10_000.0,
        equity=10_012.5,
        margin=109.54,
        margin_free=9_902.96,
        margin_level=9_140.5,
        floating_pnl=12.5,
        daily_pnl=40.25,
        drawdown_pct=1.5,
        max_balance=10_150.0,
        open_positions=1,
        pending_orders=0,
        timestamp_us=now_us(),
    )


def positions() -> bp.Positions:
    return bp.Positions(
        positions=(
            bp.Position(
                ticket=123456789,
                order_type=bp.OrderType.BUY,
                volume=0.1,
                open_price=1.0954,
                stop_loss=1.0932,
                take_profit=1.0982,
                profit=12.5,
                symbol="EURUSD",
            ),
        ),
        timestamp_us=now_us(),
    )


async def probe_poll(dsn: str, ea: dict, interval_s: float, stats: Stats) -> None:
    """Find the probe EA's EURUSD rows as they become visible (`stats.probe_pending` is in send order)."""
    pending = stats.probe_pending
    import psycopg

    query = (
        "SELECT (extract(epoch FROM time) * 1000000)::bigint FROM mt5_broker_quotes"
        " WHERE tenant_id = %s AND account_id = %s AND symbol = 'EURUSD' AND time >= to_timestamp(%s)"
    )
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            await asyncio.sleep(interval_s)
            if not pending:
                continue
            polled_us = now_us()
            while pending and next(iter(pending)) < polled_us - LOST_AFTER_S * 1e6:
                stats.probe_lost.append(next(iter(pending)))
                del pending[stats.probe_lost[-1]]
            if not pending:
                continue
            oldest = next(iter(pending))
            cursor = await conn.execute(query, [ea["tenant_id"], ea["account_id"], (oldest - 5) / 1e6])
            stats.probe_polls += 1
            for (row_us,) in await cursor.fetchall():
                for sent_us in (row_us, row_us - 1, row_us + 1, row_us - 2, row_us + 2):
                    if sent_us in pending:
                        del pending[sent_us]
                        stats.latencies.append([sent_us, polled_us - sent_us])
                        break


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def run(config: dict) -> None:
    url, eas = config["url"], config["eas"]
    stats = Stats()
    gate = asyncio.Semaphore(config.get("connect_concurrency", 20))
    failures: Counter = Counter()

    async def one(ea: dict):
        async with gate:
            try:
                return await ea_connect(url, ea, config.get("use_api_key", False))
            except Exception as exc:
                failures[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                return None

    started = time.perf_counter()
    connections = await asyncio.gather(*(one(ea) for ea in eas))
    connect_s = time.perf_counter() - started
    live = [(ea, ws) for ea, ws in zip(eas, connections, strict=True) if ws is not None]
    emit(
        {
            "event": "ready",
            "connected": len(live),
            "failed": sum(failures.values()),
            "failures": dict(failures.most_common(3)),
            "connect_s": connect_s,
        }
    )

    if config.get("on_connect"):  # protocol §6 step 3: the EA reports finance and positions right after HELLO
        for _ea, ws in live:
            await ws.send(bp.encode(finance()))
            await ws.send(bp.encode(positions()))
    tasks = []
    probing = False
    for i, (_ea, ws) in enumerate(live):
        tasks.append(asyncio.create_task(reader(ws, stats, config.get("ack", True))))
        if config.get("fps"):
            probe = None
            if i == 0 and config.get("probe_dsn"):
                probe, probing = stats.probe_pending, True
            frames = PriceFrames(seed=config.get("seed", 0) + i, as_json=config.get("json", False))
            tasks.append(asyncio.create_task(price_sender(ws, frames, config["fps"], stats, probe)))
        for key, build, counter in (
            ("heartbeat_s", heartbeat, "heartbeats"),
            ("finance_s", finance, "finances"),
            ("positions_s", positions, "positions"),
        ):
            if config.get(key):
                tasks.append(asyncio.create_task(periodic(ws, config[key], build, counter, stats)))
    if probing:
        interval_s = config.get("probe_interval_s", 0.01)
        tasks.append(asyncio.create_task(probe_poll(config["probe_dsn"], live[0][0], interval_s, stats)))

    command = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), config.get("max_s", 600))
    assert command.strip() in ("stop", ""), command
    for task in tasks:
        task.cancel()
    open_now = sum(1 for _ea, ws in live if ws.state.name == "OPEN")
    emit(
        {
            "event": "result",
            "connected": len(live),
            "open_at_stop": open_now,
            "frames": stats.frames,
            "ticks": stats.ticks,
            "ticks_by_100ms": stats.ticks_by_100ms,
            "payload_bytes": stats.payload_bytes,
            "wire_bytes": stats.wire_bytes,
            "late_resets": stats.late_resets,
            "heartbeats": stats.heartbeats,
            "finances": stats.finances,
            "positions": stats.positions,
            "errors": dict(stats.errors),
            "closed": dict(stats.closed),
            "received": stats.received,
            "latencies": stats.latencies,
            "probe_lost": stats.probe_lost,
            "probe_pending": list(stats.probe_pending),
            "probe_polls": stats.probe_polls,
            "stopped_us": now_us(),
        }
    )


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        uvloop.run(run(config))  # its timers and transports: ~10 % less CPU here than asyncio's loop
    finally:
        sys.stdout.flush()
        os._exit(0)  # sockets close with the process; no per-connection close handshake to wait for


if __name__ == "__main__":
    main()
