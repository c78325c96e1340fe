"""Gateway test helpers: a minimal binary EA client over Channels' communicator, one at the wire (`WireEA`, for a
server in another process), both opening their session as eaclient does (its HELLO, its socket options) and then
sending whatever frames a test needs; and the ingest side around them (the data bridge as a process or in this one,
and waits on its JetStream queue for INGEST_MODE=bridge)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import nats
import nats.js.errors
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

import binproto
from bench.storm_ea import handshake_accepted, handshake_request
from eaclient.client import hello_build, session_open, ws_open
from suho.asgi import application
from suho.bus import nats_servers
from tests.servers import daphne_serving
from trading.bridge import INGEST_STREAM, bridge_run
from trading.gateway import batchers_flush


def hello(account, secret) -> bytes:
    """HELLO with the account's API key, as eaclient's EAClient sends it."""
    return binproto.encode(hello_build(account.account_id, api_key=secret))


async def wire_session(url: str, account, secret: str, **options) -> ClientConnection:
    """A socket authenticated with the account's API key, as eaclient opens it (AuthRefused otherwise), for a test
    that then sends its own frames. `options` go to the WebSocket (e.g. max_size=None to read whatever comes)."""
    ws, _result = await session_open(url, hello_build(account.account_id, api_key=secret), timeout_s=30, **options)
    return ws


async def receive_until(communicator, kind, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        frame = await communicator.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if frame["type"] == "websocket.close":
            raise AssertionError(f"closed while waiting for {kind.__name__}: {frame}")
        message = binproto.decode(frame["bytes"])
        if isinstance(message, kind):
            return message


async def connect(account, secret):
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(bytes_data=hello(account, secret))
    result = await receive_until(communicator, binproto.AuthResult)
    if result.status == binproto.AuthStatus.OK:
        await receive_until(communicator, binproto.RiskParameters)  # the resync starts once the connect committed
    return communicator, result


class WireEA:
    """An EA at the wire: one real WebSocket to a server process. A reader task keeps every message it receives
    and the close code, so a test can wait on either with a deadline."""

    def __init__(self, ws: ClientConnection, name: str):
        self.ws = ws
        self.name = name
        self.received: list = []
        self.close_code: int | None = None
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, account, secret: str, name: str = "EA") -> tuple[WireEA, binproto.AuthResult]:
        """Connect and send HELLO; return once AUTH_RESULT came (the server may close it right after)."""
        ea = cls(await ws_open(url, timeout_s=10, close_timeout=2), name)
        await ea.send_bytes(hello(account, secret))
        return ea, await ea.next(binproto.AuthResult)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = binproto.decode(frame) if isinstance(frame, bytes) else binproto.from_json(frame)
                async with self._changed:
                    self.received.append(message)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        async with self._changed:
            self.close_code = self.ws.close_code
            self._changed.notify_all()

    async def _until(self, found, what: str, timeout: float):
        async with self._changed:
            try:
                return await asyncio.wait_for(self._changed.wait_for(found), timeout)
            except TimeoutError:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s; got {self.received!r}") from None

    async def next(self, kind, match=lambda message: True, timeout: float = 10.0):
        """The first message of `kind` (received so far or later) for which `match` holds."""
        await self._until(lambda: self._first(kind, match) is not None or self.close_code is not None,
                          kind.__name__, timeout)  # fmt: skip
        message = self._first(kind, match)
        if message is None:
            raise AssertionError(f"{self.name}: closed ({self.close_code}) before a {kind.__name__}")
        return message

    def _first(self, kind, match):
        return next((m for m in self.received if isinstance(m, kind) and match(m)), None)

    async def closed(self, timeout: float = 10.0) -> int:
        """The close code the server closed this socket with."""
        await self._until(lambda: self.close_code is not None, "close", timeout)
        return self.close_code

    def count(self, kind, match=lambda message: True) -> int:
        return sum(1 for m in self.received if isinstance(m, kind) and match(m))

    async def send(self, message) -> None:
        await self.send_bytes(binproto.encode(message))

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data)

    async def aclose(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._reader, 10)


def v1_packet(ticks: list[tuple[int, float, float]], timestamp_us: int) -> bytes:
    return binproto.encode(
        binproto.PriceStream(
            ticks=tuple(binproto.PriceTick(symbol=sid, bid=bid, ask=ask, spread_points=20) for sid, bid, ask in ticks),
            version=1, timestamp_us=timestamp_us,
        ),
        pad=len(ticks) <= 8,
    )  # fmt: skip


def trade_opened(ticket: int, seq: int, signal_id=None) -> binproto.TradeOpened:
    now_us = time.time_ns() // 1000
    return binproto.TradeOpened(
        event_seq=seq, ticket=ticket, order_type=binproto.OrderType.BUY, volume=0.1, price=1.0954, stop_loss=1.0934,
        take_profit=1.0984, signal_id=signal_id, open_time_us=now_us, commission=-0.7, magic=7, symbol="EURUSD",
        timestamp_us=now_us,
    )  # fmt: skip


def rows(sql: str, params=()):
    with connections["operator"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- servers and the data bridge ------------------------------------------------------------------------------------


def server_env(**extra: str) -> dict:
    """The environment of a server process (daphne, data_bridge) on this session's test database, Redis and NATS."""
    test_database = connections["default"].settings_dict["NAME"]  # "test_" + NAME, set up by django_db_setup
    return {
        **os.environ,
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{test_database}").geturl(),
        "REDIS_URL": settings.REDIS_URL,
        "NATS_URL": settings.NATS_URL,
        "DJANGO_SETTINGS_MODULE": "suho.test_settings",
        "SUHO_TESTING": "1",
        **extra,
    }


@contextlib.contextmanager
def server_with_options(tmp_path_factory, name: str, *options: str):
    """A server process on this session's test database (`tests.servers.daphne_serving`) started with daphne's
    command-line `options`, its log in a temporary directory named after `name`; yields its port."""
    log = tmp_path_factory.mktemp(name) / "daphne.log"
    with daphne_serving(server_env(), log, options) as port:
        yield port


async def raw_ws_opened(port: int, timeout_s: float):
    """A raw WebSocket connection to the server's EA path (a client not ours: bench.storm_ea's frame helpers, written
    from docs/protocol.md), handshaken within `timeout_s`; (reader, writer)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16))
        writer.write(handshake_request(f"ws://127.0.0.1:{port}/ws/ea/", key))
        assert handshake_accepted(await reader.readuntil(b"\r\n\r\n"), key)
    return reader, writer


def bridge_process(log_path, *options: str) -> subprocess.Popen:
    """`manage.py data_bridge` in a process of its own (so it can be SIGKILLed), appending to `log_path`."""
    command = [sys.executable, "manage.py", "data_bridge", *options]
    with log_path.open("ab") as log_file:
        return subprocess.Popen(command, env=server_env(INGEST_MODE="bridge"), cwd=settings.BASE_DIR, stdout=log_file,
                                stderr=subprocess.STDOUT)  # fmt: skip


async def ingest_queue_reset() -> None:
    """Empty SUHO_INGEST and delete its consumers: a work queue takes one consumer per subject, so a test's bridge
    needs the previous test's durable gone."""
    connection = await nats.connect(nats_servers(settings.NATS_URL))
    try:
        jetstream = connection.jetstream()
        for consumer in await jetstream.consumers_info(INGEST_STREAM):
            await jetstream.delete_consumer(INGEST_STREAM, consumer.name)
        await jetstream.purge_stream(INGEST_STREAM)
    finally:
        await connection.close()


async def ingest_consumer_wait(jetstream, durable: str, *, timeout: float = 60.0, process=None):
    """The info of `durable` on SUHO_INGEST once a bridge has created it: a bridge process boots Django before it
    adds its consumer, which on a loaded machine takes seconds (asking at once raised NotFoundError). `process`, if
    given, must stay alive meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await jetstream.consumer_info(INGEST_STREAM, durable)
        except nats.js.errors.NotFoundError:
            assert process is None or process.poll() is None, f"the bridge exited with {process.returncode}"
            assert time.monotonic() < deadline, f"no consumer {durable} on {INGEST_STREAM} after {timeout} s"
            await asyncio.sleep(0.05)


async def ingest_queue_depth() -> int:
    """Batches in SUHO_INGEST: a work queue deletes a batch when a bridge acks it, which it does after commit."""
    connection = await nats.connect(nats_servers(settings.NATS_URL))
    try:
        return (await connection.jetstream().stream_info(INGEST_STREAM)).state.messages
    finally:
        await connection.close()


async def ingest_settled(timeout: float = 30.0) -> None:
    """Everything this process's gateway accepted is committed: its batchers flushed and, in bridge mode, every
    batch applied by a bridge and acked (the after-commit cache and NATS work done too)."""
    await batchers_flush()
    if settings.INGEST_MODE != "bridge":
        return
    deadline = time.monotonic() + timeout
    while (depth := await ingest_queue_depth()) > 0:
        assert time.monotonic() < deadline, f"{depth} batches still in {INGEST_STREAM} after {timeout} s"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def bridge_running(*, reset: bool = True, idle_timeout_s: float = 0.25):
    """A data bridge (`bridge_run`) in this process's loop for the duration of the block, on an empty queue unless
    `reset` is False; yields its task."""
    if reset:
        await ingest_queue_reset()
    stop = asyncio.Event()
    task = asyncio.create_task(bridge_run(stop=stop, durable="data-bridge-inprocess", idle_timeout_s=idle_timeout_s))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await ingest_queue_reset()
