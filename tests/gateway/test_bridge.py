"""The data bridge on its own: batches accepted by JetStream reach PostgreSQL exactly once, though the bridge is
killed twice; oversized batches, poison messages and idle fetches do not stop it (end to end over WebSockets:
test_bridge_websocket.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from datetime import timedelta
from functools import partial

import nats
import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone
from nats.js.errors import NotFoundError

from quotes.ingest import TickRow
from suho.bus import get_bus
from suho.schedules import BEAT_SCHEDULE
from suho.streams import streams_ensure
from tests.gateway.ea_client import (
    bridge_process,
    bridge_running,
    ingest_queue_depth,
    ingest_queue_reset,
    ingest_settled,
    rows,
)
from trading import gateway
from trading.bridge import (
    INGEST_STREAM,
    MAX_MESSAGE_BYTES,
    ROWS_PER_MESSAGE,
    Batch,
    batches_apply,
    bridge_applied_prune,
    ingest_publish,
    ingest_publish_nothing_after,
)
from trading.gateway import Batcher
from trading.tasks import bridge_applied_prune_task

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

TICKS = 20_000
BATCH = 500
DURABLE = "data-bridge-test"


def stored(account_id) -> tuple[int, int]:
    [(total, distinct)] = rows(
        "SELECT count(*), count(DISTINCT time) FROM mt5_broker_quotes WHERE account_id = %s", [account_id]
    )
    return total, distinct


def ticks(tenant, account, count: int, start_us: int | None = None) -> list[TickRow]:
    start_us = time.time_ns() // 1000 if start_us is None else start_us
    return [TickRow(start_us + i, str(tenant.id), str(account.account_id), "EURUSD", 1.1, 1.1002, 2.0, 0, True,
                    "unknown", True) for i in range(count)]  # fmt: skip


async def test_every_acknowledged_tick_is_stored_exactly_once_across_two_bridge_kills(ea_account, tmp_path):
    tenant, account, _secret = ea_account
    await asyncio.to_thread(streams_ensure)
    await ingest_queue_reset()
    log_path = tmp_path / "bridge.log"
    quotes = Batcher("quotes", partial(ingest_publish, "quotes"), ingest_publish_nothing_after)
    batch = ticks(tenant, account, TICKS)
    bridge = bridge_process(log_path, "--durable", DURABLE)
    kills = 0
    try:
        for index in range(0, TICKS, BATCH):
            quotes.add(batch[index : index + BATCH])
            await quotes.flush()  # returns once JetStream acknowledged the batch
            if index in (TICKS // 3 // BATCH * BATCH, 2 * TICKS // 3 // BATCH * BATCH):
                bridge.send_signal(signal.SIGKILL)  # mid-stream, wherever it is
                bridge.wait(timeout=10)
                kills += 1
                bridge = bridge_process(log_path, "--durable", DURABLE)
        assert quotes.flushed_rows == TICKS and quotes.dropped_rows == 0
        deadline = time.monotonic() + 90
        while (await database_sync_to_async(stored)(account.account_id))[0] < TICKS:
            assert bridge.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"stored {await database_sync_to_async(stored)(account.account_id)}"
            await asyncio.sleep(0.2)
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=20)
        await ingest_queue_reset()
    assert kills == 2
    assert await database_sync_to_async(stored)(account.account_id) == (TICKS, TICKS)


async def test_a_batch_over_the_nats_message_limit_is_sent_in_parts_and_stored_once(ea_account, settings):
    """20,000 ticks are ≈ 3 MB of JSON, over NATS's 1 MiB max payload: once retried forever, wedging the batcher."""
    tenant, account, _secret = ea_account
    settings.INGEST_MODE = "bridge"
    gateway._batchers.clear()
    try:
        await ingest_queue_reset()
        quotes = gateway.batcher("quotes")
        quotes.add(ticks(tenant, account, 20_000))
        await quotes.flush()
        assert (quotes.flushed_rows, quotes.dropped_rows) == (20_000, 0)
        assert await ingest_queue_depth() == 20_000 // ROWS_PER_MESSAGE
        big = ticks(tenant, account, 10_000, start_us=time.time_ns() // 1000 + 1_000_000)
        assert len(json.dumps(big)) > 2 * MAX_MESSAGE_BYTES  # what a caller other than the batcher might send
        assert await asyncio.to_thread(ingest_publish, "quotes", big) == 10_000
        assert await ingest_queue_depth() == 20_000 // ROWS_PER_MESSAGE + 4  # halved, then halved again
        async with bridge_running(reset=False):
            await ingest_settled()
    finally:
        gateway._batchers.clear()
    assert await database_sync_to_async(stored)(account.account_id) == (30_000, 30_000)


async def test_a_batch_of_an_unknown_kind_or_not_json_is_skipped_and_the_bridge_goes_on(ea_account, settings):
    """…and a batch whose Nats-Msg-Id would not fit suho_bridge_applied is recorded under its content hash."""
    tenant, account, _secret = ea_account
    settings.INGEST_MODE = "bridge"
    await ingest_queue_reset()
    bus = get_bus()
    await asyncio.to_thread(bus.jetstream_publish, "suho.ingest.bogus", b"[]", msg_id="bogus-1")
    await asyncio.to_thread(bus.jetstream_publish, "suho.ingest.quotes", b"{not json", msg_id="bogus-2")
    await asyncio.to_thread(ingest_publish, "quotes", ticks(tenant, account, 10))
    long_id = json.dumps(ticks(tenant, account, 5, start_us=time.time_ns() // 1000 + 1_000_000)).encode()
    await asyncio.to_thread(bus.jetstream_publish, "suho.ingest.quotes", long_id, msg_id="x" * 300)  # > the column
    async with bridge_running(reset=False) as bridge:
        await ingest_settled()
        assert not bridge.done()
    assert await database_sync_to_async(stored)(account.account_id) == (15, 15)


async def test_an_idle_bridge_whose_fetches_time_out_keeps_running(ea_account, settings):
    """nats.py raises asyncio's own TimeoutError when the server answers a fetch after its deadline: idle, not fatal."""
    tenant, account, _secret = ea_account
    settings.INGEST_MODE = "bridge"
    async with bridge_running(idle_timeout_s=0.001) as bridge:
        await asyncio.sleep(0.5)  # a few hundred fetches that time out
        assert not bridge.done(), bridge.exception()
        await asyncio.to_thread(ingest_publish, "quotes", ticks(tenant, account, 10))
        await ingest_settled()
    assert await database_sync_to_async(stored)(account.account_id) == (10, 10)


def test_a_batch_delivered_again_after_its_commit_is_not_applied_twice(ea_account):
    """A bridge killed between its commit and its ack: JetStream redelivers the batch, suho_bridge_applied skips it."""
    tenant, account, _secret = ea_account
    batch = Batch("quotes:redelivered", 987_654_321, "quotes", [list(row) for row in ticks(tenant, account, 5)])
    assert batches_apply([batch]) == [batch]
    assert batches_apply([batch]) == []
    assert stored(account.account_id) == (5, 5)
    with connections["owner"].cursor() as cursor:
        cursor.execute("DELETE FROM suho_bridge_applied WHERE msg_id = %s", [batch.msg_id])


async def _ingest_stream_create_again(url: str) -> None:
    connection = await nats.connect(url)
    try:
        with contextlib.suppress(NotFoundError):
            await connection.jetstream().delete_stream(INGEST_STREAM)
    finally:
        await connection.close()
    await asyncio.to_thread(streams_ensure)


async def test_batches_in_a_stream_created_again_are_applied_though_its_sequences_start_at_1_again(
    ea_account, settings
):
    """An operator deletes SUHO_INGEST and `nats_setup` creates it again: sequences restart at 1. A bridge that
    remembered sequences would take each new batch for one it had applied and drop its rows."""
    tenant, account, _secret = ea_account
    settings.INGEST_MODE = "bridge"
    for round_ in range(2):
        await _ingest_stream_create_again(settings.NATS_URL)
        async with bridge_running():
            start_us = time.time_ns() // 1000 + round_ * 1_000_000
            await asyncio.to_thread(ingest_publish, "quotes", ticks(tenant, account, 10, start_us=start_us))
            await ingest_settled()
    assert await database_sync_to_async(stored)(account.account_id) == (20, 20)
    applied = await database_sync_to_async(rows)(
        "SELECT seq FROM suho_bridge_applied WHERE stream = %s ORDER BY applied_at", [INGEST_STREAM]
    )
    assert applied == [(1,), (1,)]  # the same sequence twice: two batches, both applied


def test_applied_batch_records_are_kept_while_the_stream_could_redeliver_them_and_pruned_after(settings):
    keep_h = settings.NATS_ACCOUNT_STREAM_MAX_AGE_H + 24
    now = timezone.now()
    with connections["owner"].cursor() as cursor:
        for msg_id, hours_ago in [("quotes:old", keep_h + 1), ("quotes:recent", keep_h - 1), ("quotes:now", 0)]:
            cursor.execute(
                "INSERT INTO suho_bridge_applied (msg_id, stream, seq, applied_at) VALUES (%s, %s, 1, %s)",
                [msg_id, INGEST_STREAM, now - timedelta(hours=hours_ago)],
            )
    assert bridge_applied_prune(now=now) == 1
    assert rows("SELECT msg_id FROM suho_bridge_applied ORDER BY msg_id") == [("quotes:now",), ("quotes:recent",)]
    settings.NATS_ACCOUNT_STREAM_MAX_AGE_H = 0  # no age limit: the stream could redeliver any of them
    assert bridge_applied_prune(now=now + timedelta(days=365)) == 0
    assert BEAT_SCHEDULE["bridge-applied-prune"]["task"] == bridge_applied_prune_task.name
