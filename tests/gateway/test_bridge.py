"""Bridge mode: ticks accepted by JetStream reach PostgreSQL exactly once, though the bridge is killed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from functools import partial
from urllib.parse import urlsplit

import nats
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from quotes.ingest import TickRow
from suho.streams import streams_ensure
from tests.gateway.ea_client import rows
from trading.bridge import INGEST_STREAM, ingest_publish, ingest_publish_nothing_after
from trading.gateway import Batcher

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

TICKS = 20_000
BATCH = 500
DURABLE = "data-bridge-test"


def bridge_process(log_path) -> subprocess.Popen:
    test_database = connections["default"].settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{test_database}").geturl(),
        "REDIS_URL": settings.REDIS_URL,
        "NATS_URL": settings.NATS_URL,
        "DJANGO_SETTINGS_MODULE": "suho.test_settings",
        "SUHO_TESTING": "1",
        "INGEST_MODE": "bridge",
    }
    command = [sys.executable, "manage.py", "data_bridge", "--durable", DURABLE]
    return subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=log_path.open("ab"),
                            stderr=subprocess.STDOUT)  # fmt: skip


async def reset_queue() -> None:
    connection = await nats.connect(settings.NATS_URL)
    try:
        jetstream = connection.jetstream()
        await jetstream.purge_stream(INGEST_STREAM)
        try:
            await jetstream.delete_consumer(INGEST_STREAM, DURABLE)
        except nats.js.errors.NotFoundError:
            pass
    finally:
        await connection.close()


def stored(account_id) -> tuple[int, int]:
    [(total, distinct)] = rows(
        "SELECT count(*), count(DISTINCT time) FROM mt5_broker_quotes WHERE account_id = %s", [account_id]
    )
    return total, distinct


async def test_every_acknowledged_tick_is_stored_exactly_once_across_two_bridge_kills(ea_account, tmp_path):
    tenant, account, _secret = ea_account
    await asyncio.to_thread(streams_ensure)
    await reset_queue()
    log_path = tmp_path / "bridge.log"
    quotes = Batcher("quotes", partial(ingest_publish, "quotes"), ingest_publish_nothing_after)
    start_us = time.time_ns() // 1000
    ticks = [TickRow(start_us + i, str(tenant.id), str(account.account_id), "EURUSD", 1.1, 1.1002, 2.0, 0, True,
                     "unknown", True) for i in range(TICKS)]  # fmt: skip
    bridge = bridge_process(log_path)
    kills = 0
    try:
        for index in range(0, TICKS, BATCH):
            quotes.add(ticks[index : index + BATCH])
            await quotes.flush()  # returns once JetStream acknowledged the batch
            if index in (TICKS // 3 // BATCH * BATCH, 2 * TICKS // 3 // BATCH * BATCH):
                bridge.send_signal(signal.SIGKILL)  # mid-stream, wherever it is
                bridge.wait(timeout=10)
                kills += 1
                bridge = bridge_process(log_path)
        assert quotes.flushed_rows == TICKS and quotes.dropped_rows == 0
        deadline = time.monotonic() + 90
        while (await database_sync_to_async(stored)(account.account_id))[0] < TICKS:
            assert bridge.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"stored {await database_sync_to_async(stored)(account.account_id)}"
            await asyncio.sleep(0.2)
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=20)
    assert kills == 2
    assert await database_sync_to_async(stored)(account.account_id) == (TICKS, TICKS)
