"""Reference market data feeds (the seed's "Polygon"): the Polygon.io forex WebSocket and a replay feed.

A feed is an async iterator of `ReferenceTick(symbol, bid, ask, time)`, symbols in the broker spelling (`EURUSD`).
`feed_pump` batches a feed into a sink (`quotes.services.reference_quotes_record`), flushing every
`flush_interval_s` even when the market goes quiet. Nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, Protocol, TextIO

from quotes.instruments import normalise_symbol, pip_size
from suho.clock import ms_to_datetime

log = logging.getLogger(__name__)

# Polygon.io's forex cluster (docs: WebSocket → Forex → Quotes). Polygon now also answers as Massive
# (wss://socket.massive.com/forex, same protocol): POLYGON_WS_URL selects either.
POLYGON_FOREX_URL = "wss://socket.polygon.io/forex"
HANDSHAKE_TIMEOUT_S = 10.0

POLYGON_AUTH_FAILED = "Polygon refused the API key: {message}"
POLYGON_NO_AUTH_REPLY = "Polygon did not answer the auth message within {timeout_s} s"


class ReferenceTick(NamedTuple):
    symbol: str
    bid: float
    ask: float
    time: datetime

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class ReferenceFeed(Protocol):
    def __aiter__(self) -> AsyncIterator[ReferenceTick]: ...


class PolygonAuthError(Exception):
    """The key was refused: reconnecting cannot help, so the feed stops."""


# --- Polygon: the wire, pure functions ---------------------------------------------------------------------------


def polygon_pair(symbol: str) -> str:
    """`EURUSD` (or `eurusd.m`) → `EUR/USD`, Polygon's forex pair spelling."""
    name = normalise_symbol(symbol)
    return f"{name[:3]}/{name[3:]}"


def polygon_subscribe_params(symbols: Iterable[str]) -> str:
    """`C.EUR/USD,C.GBP/USD`: one subscribe message for every pair (the quotes channel is `C`)."""
    return ",".join(f"C.{polygon_pair(symbol)}" for symbol in symbols)


def polygon_parse(raw: str | bytes) -> tuple[list[ReferenceTick], list[dict]]:
    """One WebSocket message (a JSON array of events) → (quotes, status events); other events are ignored.

    A quote is `{"ev": "C", "p": "EUR/USD", "a": ask, "b": bid, "t": unix ms}`.
    """
    events = json.loads(raw)
    if isinstance(events, dict):
        events = [events]
    quotes, statuses = [], []
    for event in events:
        kind = event.get("ev")
        if kind == "C":
            quotes.append(
                ReferenceTick(
                    symbol=event["p"].replace("/", "").replace("-", "").upper(),
                    bid=float(event["b"]),
                    ask=float(event["a"]),
                    time=ms_to_datetime(event["t"]),
                )
            )
        elif kind == "status":
            statuses.append(event)
    return quotes, statuses


# --- Polygon: the connection ---------------------------------------------------------------------------------


class PolygonForexFeed:
    """Polygon's real-time forex quotes: connect, auth, subscribe, yield quotes; reconnect with backoff.

    The backoff doubles from `backoff_initial_s` to `backoff_max_s` and starts over after a successful auth.
    A refused key raises `PolygonAuthError`. `max_connects` bounds the attempts (tests); None = forever.
    """

    def __init__(
        self,
        *,
        api_key: str,
        symbols: list[str],
        url: str = POLYGON_FOREX_URL,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_connects: int | None = None,
    ):
        self.api_key = api_key
        self.symbols = symbols
        self.url = url
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_connects = max_connects
        self.connects = 0

    async def _handshake(self, ws) -> None:
        await ws.send(json.dumps({"action": "auth", "params": self.api_key}))
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            while True:
                _quotes, statuses = polygon_parse(await ws.recv())
                for status in statuses:
                    if status.get("status") == "auth_success":
                        await ws.send(
                            json.dumps({"action": "subscribe", "params": polygon_subscribe_params(self.symbols)})
                        )
                        return
                    if status.get("status") == "auth_failed":
                        raise PolygonAuthError(POLYGON_AUTH_FAILED.format(message=status.get("message", "")))

    async def __aiter__(self) -> AsyncIterator[ReferenceTick]:
        import websockets

        delay = self.backoff_initial_s
        while self.max_connects is None or self.connects < self.max_connects:
            self.connects += 1
            try:
                async with websockets.connect(self.url, open_timeout=HANDSHAKE_TIMEOUT_S, max_size=2**22) as ws:
                    try:
                        await self._handshake(ws)
                    except TimeoutError:
                        log.warning(POLYGON_NO_AUTH_REPLY.format(timeout_s=HANDSHAKE_TIMEOUT_S))
                        raise
                    delay = self.backoff_initial_s
                    log.info("polygon: subscribed to %s", polygon_subscribe_params(self.symbols))
                    async for raw in ws:
                        quotes, _statuses = polygon_parse(raw)
                        for quote in quotes:
                            yield quote
            except PolygonAuthError:
                raise
            except (OSError, TimeoutError, ValueError, websockets.WebSocketException) as exc:
                log.warning("polygon: connection lost (%s); reconnecting in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)


# --- Replay: recorded or generated streams -----------------------------------------------------------------------

# The simulated EA's start prices (eaclient.simulated), so the demo's broker-vs-reference deviations stay small.
START_PRICES = {
    "EURUSD": 1.085, "GBPUSD": 1.27, "USDJPY": 149.5, "USDCHF": 0.88, "AUDUSD": 0.66, "USDCAD": 1.36,
    "NZDUSD": 0.60, "XAUUSD": 2400.0, "XAGUSD": 28.5,
}  # fmt: skip
REVERSION = 1e-3  # a weak pull back to the start price each step, so a long demo does not drift away


def random_walk(
    *,
    symbols: list[str],
    seed: int,
    start: datetime,
    count: int | None,
    step: timedelta = timedelta(milliseconds=250),
    spread_pips: float = 1.0,
    volatility_pips: float = 0.6,
) -> Iterator[ReferenceTick]:
    """A seeded random walk of the mid per symbol, one tick per symbol per step: the same seed, the same stream."""
    rng = random.Random(seed)
    starts = {symbol: START_PRICES.get(normalise_symbol(symbol), 1.0) for symbol in symbols}
    mids = dict(starts)
    made = 0
    moment = start
    while count is None or made < count:
        for symbol in symbols:
            if count is not None and made >= count:
                return
            pip = float(pip_size(symbol))
            mids[symbol] += rng.gauss(0, volatility_pips) * pip + (starts[symbol] - mids[symbol]) * REVERSION
            half = spread_pips * pip / 2
            digits = max(0, -int(f"{pip / 10:e}".split("e")[1]))
            yield ReferenceTick(symbol, round(mids[symbol] - half, digits), round(mids[symbol] + half, digits), moment)
            made += 1
        moment += step


def recorded_ticks(path: Path) -> Iterator[ReferenceTick]:
    """A recording: JSON lines `{"symbol","bid","ask","time"}` or CSV with that header; time ISO-8601 or unix ms."""

    with path.open(newline="") as handle:
        rows = (
            (json.loads(line) for line in handle if line.strip()) if path.suffix == ".jsonl" else csv.DictReader(handle)
        )
        for row in rows:
            yield _tick(row)


def _tick(row: dict) -> ReferenceTick:
    """A recorded tick: `{"symbol","bid","ask","time"}`, time ISO-8601 or unix ms."""
    value = row["time"]
    if isinstance(value, int | float) or str(value).isdigit():
        moment = ms_to_datetime(int(value))
    else:
        moment = datetime.fromisoformat(str(value))
    return ReferenceTick(row["symbol"], float(row["bid"]), float(row["ask"]), moment)


class ReplayFeed:
    """Plays ticks as fast as the consumer takes them, or as a live feed (`realtime=True`, the demo): paced by the
    gaps between their timestamps and restamped with the wall clock, so they line up with live broker ticks."""

    def __init__(self, ticks: Iterable[ReferenceTick], *, realtime: bool = False):
        self.ticks = ticks
        self.realtime = realtime

    async def __aiter__(self) -> AsyncIterator[ReferenceTick]:
        previous: datetime | None = None
        for tick in self.ticks:
            if self.realtime and previous is not None and tick.time > previous:
                await asyncio.sleep((tick.time - previous).total_seconds())
            previous = tick.time
            yield tick._replace(time=datetime.now(UTC)) if self.realtime else tick
            await asyncio.sleep(0)


class StreamFeed:
    """Ticks as JSON lines from a stream another program writes as they happen (`make run`'s demo: `python -m
    eaclient.market`, the demo market its EA's broker quotes too), each kept with its own time. Lines are read in a
    thread, so a quiet stream never blocks the event loop; the feed ends with the stream."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[ReferenceTick]:
        while line := await asyncio.to_thread(self.stream.readline):
            if line.strip():
                yield _tick(json.loads(line))


# --- Pump: feed → batches → sink ---------------------------------------------------------------------------------


async def feed_pump(
    feed: ReferenceFeed,
    sink: Callable[[list[ReferenceTick]], Awaitable[object]],
    *,
    batch_size: int = 500,
    flush_interval_s: float = 0.25,
    limit: int | None = None,
) -> int:
    """Read `feed` into batches of at most `batch_size`, handed to `sink` when full or `flush_interval_s` old.

    Returns the number of ticks handed over; stops after `limit` ticks or when the feed ends (its error raises).
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=batch_size * 4)
    done = object()

    async def produce() -> None:
        taken = 0
        ticks = aiter(feed)
        try:
            async for tick in ticks:
                await queue.put(tick)
                taken += 1
                if limit is not None and taken >= limit:
                    break
        finally:
            if hasattr(ticks, "aclose"):
                await ticks.aclose()  # a generator feed closes its connection now, not at garbage collection
            await queue.put(done)

    producer = asyncio.create_task(produce())
    total, batch = 0, []
    loop = asyncio.get_running_loop()
    deadline = 0.0
    try:
        while True:
            timeout = max(0.0, deadline - loop.time()) if batch else None
            try:
                item = await asyncio.wait_for(queue.get(), timeout=timeout)
            except TimeoutError:
                item = None  # the oldest tick in the batch has waited flush_interval_s
            if item is not None and item is not done:
                if not batch:
                    deadline = loop.time() + flush_interval_s
                batch.append(item)
            if batch and (item is None or item is done or len(batch) >= batch_size):
                await sink(batch)
                total += len(batch)
                batch = []
            if item is done:
                break
        await producer  # re-raises the feed's error, if any
    finally:
        producer.cancel()
    return total
