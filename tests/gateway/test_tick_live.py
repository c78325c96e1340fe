"""Ticks are volume: the gateway publishes each to `mt5.account.{id}.quotes.{symbol}` as it decodes the frame, and
stores it in the next batch (docs/streams.md, issue 21). A subscriber does not wait on storage: here the tick table is
locked, so no batch can be stored, and the ticks still arrive; once the lock goes, they are stored, and each was
published once (in bridge mode the data bridge stores and caches, it does not publish again)."""

from __future__ import annotations

import asyncio
import json
import time

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.db import connections

from binproto import DEFAULT_V1_SYMBOLS, AuthStatus
from suho.bus import get_bus
from tests.gateway.ea_client import connect, ingest_settled, rows, v1_packet

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def _table_locked() -> psycopg.Connection:
    """An owner connection holding the tick table in ACCESS EXCLUSIVE mode: every insert into it waits."""
    params = connections["owner"].get_connection_params()
    locker = psycopg.connect(**{key: value for key, value in params.items() if key != "cursor_factory"})
    locker.execute("LOCK TABLE mt5_broker_quotes IN ACCESS EXCLUSIVE MODE")
    return locker


async def test_a_tick_reaches_subscribers_while_its_batch_cannot_be_stored(ea_account, ingest_mode):
    _tenant, account, secret = ea_account
    received: list[tuple[str, dict]] = []
    bus = get_bus()
    subject = f"mt5.account.{account.account_id}.quotes.>"
    await asyncio.wrap_future(bus.subscribe(subject, lambda s, d: received.append((s, json.loads(d)))))
    communicator, result = await connect(account, secret)
    assert result.status == AuthStatus.OK
    now_us = time.time_ns() // 1000
    locker = await database_sync_to_async(_table_locked)()
    try:
        ticks = [(sid, 1.1 + sid / 10, 1.1002 + sid / 10) for sid in range(1, 9)]
        await communicator.send_to(bytes_data=v1_packet(ticks, now_us))
        deadline = time.monotonic() + 5
        while len(received) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stored_meanwhile = await database_sync_to_async(
            lambda: locker.execute("SELECT count(*) FROM mt5_broker_quotes").fetchone()[0]
        )()
    finally:
        await database_sync_to_async(locker.close)()  # the lock goes: the batch is stored
    assert stored_meanwhile == 0
    names = {sid: name for sid, name in dict(DEFAULT_V1_SYMBOLS).items() if 1 <= sid <= 8}
    assert sorted(s.rsplit(".", 1)[1] for s, _ in received) == sorted(names.values()), received
    first = next(body for s, body in received if s.endswith(f".{names[1]}"))
    assert first["bid"] == pytest.approx(1.2) and first["ask"] == pytest.approx(1.2002)
    assert first["time_us"] == now_us and first["tradeable"] is True
    await communicator.disconnect()
    await ingest_settled()
    stored = await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_broker_quotes WHERE account_id = %s", [account.account_id]
    )
    assert stored == [(8,)]
    bus.flush()
    await asyncio.sleep(0.2)
    assert len(received) == 8, "each tick is published once, by the gateway"


async def test_once_its_own_nats_connection_is_up_the_gateway_publishes_ticks_over_it(ea_account):
    """The first frame's ticks go through the bus while the gateway's own connection is made (no thread hop once it
    is up: issue 21); the next frame's go over that connection, and every tick arrives once."""
    from trading.gateway import live_publisher

    _tenant, account, secret = ea_account
    received: list[dict] = []
    bus = get_bus()
    subject = f"mt5.account.{account.account_id}.quotes.>"
    await asyncio.wrap_future(bus.subscribe(subject, lambda s, d: received.append(json.loads(d))))
    communicator, result = await connect(account, secret)
    assert result.status == AuthStatus.OK
    first_us = time.time_ns() // 1000
    ticks = [(sid, 1.1 + sid / 10, 1.1002 + sid / 10) for sid in range(1, 9)]
    await communicator.send_to(bytes_data=v1_packet(ticks, first_us))
    deadline = time.monotonic() + 5
    while len(received) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    while not (live_publisher._client and live_publisher._client.is_connected) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    sent_before = live_publisher._client.stats["out_msgs"]
    await communicator.send_to(bytes_data=v1_packet(ticks, first_us + 1_000))
    while len(received) < 16 and time.monotonic() < deadline + 5:
        await asyncio.sleep(0.01)
    assert live_publisher._client.stats["out_msgs"] - sent_before == 8, "the second frame's ticks, over its own"
    await communicator.disconnect()
    await ingest_settled()
    bus.flush()
    await asyncio.sleep(0.2)
    assert sorted(body["time_us"] for body in received) == [first_us] * 8 + [first_us + 1_000] * 8
