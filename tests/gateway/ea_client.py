"""Gateway test helpers: a minimal binary EA client over Channels' communicator, and the ingest side around it
(the data bridge as a process or in this one, and waits on its JetStream queue for INGEST_MODE=bridge)."""

from __future__ import annotations

import asyncio
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

import binproto
from suho.asgi import application
from trading.bridge import INGEST_STREAM, bridge_run
from trading.gateway import batchers_flush


def hello(account, secret) -> bytes:
    return binproto.encode(
        binproto.Hello(account_id=account.account_id, auth_method=binproto.AuthMethod.API_KEY, ea_version="1.0",
                       mt5_build=4000, access_token=secret, protocol_versions=(1, 2),
                       timestamp_us=time.time_ns() // 1000)
    )  # fmt: skip


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


def bridge_process(log_path, *options: str) -> subprocess.Popen:
    """`manage.py data_bridge` in a process of its own (so it can be SIGKILLed), appending to `log_path`."""
    command = [sys.executable, "manage.py", "data_bridge", *options]
    with log_path.open("ab") as log_file:
        return subprocess.Popen(command, env=server_env(INGEST_MODE="bridge"), cwd=settings.BASE_DIR, stdout=log_file,
                                stderr=subprocess.STDOUT)  # fmt: skip


async def ingest_queue_reset() -> None:
    """Empty SUHO_INGEST and delete its consumers: a work queue takes one consumer per subject, so a test's bridge
    needs the previous test's durable gone."""
    connection = await nats.connect(settings.NATS_URL)
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
    connection = await nats.connect(settings.NATS_URL)
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
