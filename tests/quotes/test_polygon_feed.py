"""The Polygon forex adapter against a local server speaking Polygon's documented WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from websockets.asyncio.server import serve

from quotes.feeds import (
    POLYGON_AUTH_FAILED,
    PolygonAuthError,
    PolygonForexFeed,
    ReferenceTick,
    polygon_pair,
    polygon_parse,
    polygon_subscribe_params,
)

GOOD_KEY = "test-key"
T0_MS = 1_764_000_000_000


class FakePolygon:
    """wss://socket.polygon.io/forex in miniature: status on connect, auth, subscribe, then `C` quote events.

    Each connection sends the next batch of quotes for the pairs subscribed to, then closes (a dropped link).
    """

    def __init__(self, batches: list[list[tuple[str, float, float, int]]]):
        self.batches = batches
        self.received: list[dict] = []
        self.connections = 0

    async def handler(self, ws) -> None:
        self.connections += 1
        await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
        auth = json.loads(await ws.recv())
        self.received.append(auth)
        if auth != {"action": "auth", "params": GOOD_KEY}:
            await ws.send(json.dumps([{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]))
            await ws.close()
            return
        await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))
        subscribe = json.loads(await ws.recv())
        self.received.append(subscribe)
        pairs = {param.removeprefix("C.") for param in subscribe["params"].split(",")}
        await ws.send(
            json.dumps([{"ev": "status", "status": "success", "message": f"subscribed to: {subscribe['params']}"}])
        )
        batch = self.batches[self.connections - 1] if self.connections <= len(self.batches) else []
        events = [
            {"ev": "C", "x": 48, "p": pair, "a": ask, "b": bid, "t": ms}
            for pair, bid, ask, ms in batch
            if pair in pairs
        ]
        await ws.send(json.dumps(events))
        await ws.close()


async def collect(feed) -> list[ReferenceTick]:
    return [tick async for tick in feed]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_pairs_are_spelled_the_polygon_way():
    assert polygon_pair("EURUSD") == "EUR/USD"
    assert polygon_pair("usdjpy.m") == "USD/JPY"
    assert polygon_subscribe_params(["EURUSD", "XAUUSD"]) == "C.EUR/USD,C.XAU/USD"


def test_a_quote_event_parses_into_a_reference_tick_and_status_events_are_kept_apart():
    raw = json.dumps([
        {"ev": "status", "status": "auth_success", "message": "authenticated"},
        {"ev": "C", "x": 48, "p": "EUR/USD", "a": 1.0951, "b": 1.0949, "t": T0_MS},
        {"ev": "CA", "pair": "EUR/USD", "o": 1.0, "c": 1.0},
    ])  # fmt: skip
    quotes, statuses = polygon_parse(raw)
    assert quotes == [ReferenceTick("EURUSD", 1.0949, 1.0951, at(T0_MS))]
    assert [s["status"] for s in statuses] == ["auth_success"]


async def test_the_feed_authenticates_subscribes_and_reconnects_after_the_server_drops_it():
    server = FakePolygon([
        [("EUR/USD", 1.0949, 1.0951, T0_MS), ("GBP/USD", 1.2649, 1.2651, T0_MS + 1), ("USD/JPY", 149.1, 149.2, T0_MS)],
        [("EUR/USD", 1.0950, 1.0952, T0_MS + 500)],
    ])  # fmt: skip
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        feed = PolygonForexFeed(api_key=GOOD_KEY, symbols=["EURUSD", "GBPUSD"], url=f"ws://127.0.0.1:{port}",
                                backoff_initial_s=0.01, max_connects=2)  # fmt: skip
        ticks = await asyncio.wait_for(collect(feed), timeout=10)

    assert ticks == [
        ReferenceTick("EURUSD", 1.0949, 1.0951, at(T0_MS)),
        ReferenceTick("GBPUSD", 1.2649, 1.2651, at(T0_MS + 1)),
        ReferenceTick("EURUSD", 1.0950, 1.0952, at(T0_MS + 500)),
    ], "only the subscribed pairs, across the reconnect"
    assert server.connections == feed.connects == 2
    assert (
        server.received
        == [
            {"action": "auth", "params": GOOD_KEY},
            {"action": "subscribe", "params": "C.EUR/USD,C.GBP/USD"},
        ]
        * 2
    )


async def test_a_refused_key_stops_the_feed_without_retrying():
    server = FakePolygon([])
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        feed = PolygonForexFeed(api_key="wrong", symbols=["EURUSD"], url=f"ws://127.0.0.1:{port}",
                                backoff_initial_s=0.01, max_connects=5)  # fmt: skip
        with pytest.raises(PolygonAuthError, match=POLYGON_AUTH_FAILED.format(message="authentication failed")):
            await asyncio.wait_for(collect(feed), timeout=10)
    assert server.connections == 1


async def test_an_unreachable_server_is_retried_with_growing_backoff(monkeypatch):
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds):
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("quotes.feeds.asyncio.sleep", record_sleep)
    async with serve(FakePolygon([]).handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
    feed = PolygonForexFeed(api_key=GOOD_KEY, symbols=["EURUSD"], url=f"ws://127.0.0.1:{port}",
                            backoff_initial_s=0.5, backoff_max_s=3, max_connects=5)  # fmt: skip
    assert await asyncio.wait_for(collect(feed), timeout=10) == []
    assert feed.connects == 5
    assert sleeps == [0.5, 1, 2, 3, 3]


async def test_a_server_that_never_answers_the_auth_is_dropped_and_retried(monkeypatch):
    monkeypatch.setattr("quotes.feeds.HANDSHAKE_TIMEOUT_S", 0.2)
    attempts = []

    async def silent(ws):
        attempts.append(json.loads(await ws.recv()))
        await ws.wait_closed()

    async with serve(silent, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        feed = PolygonForexFeed(api_key=GOOD_KEY, symbols=["EURUSD"], url=f"ws://127.0.0.1:{port}",
                                backoff_initial_s=0.01, max_connects=2)  # fmt: skip
        assert await asyncio.wait_for(collect(feed), timeout=10) == []
    assert attempts == [{"action": "auth", "params": GOOD_KEY}] * 2
