"""The data bridge (seed §1): volume rows travel gateway → JetStream → bridge → PostgreSQL (`INGEST_MODE=bridge`).

The gateway publishes each batch to `suho.ingest.{kind}` and treats JetStream's ack as acceptance (the message id
is a hash of the batch, so a retried publish is stored once). `manage.py data_bridge` pulls with a durable consumer,
writes the rows with the same set-based inserts as direct mode, records the stream sequences in the same transaction
(`suho_bridge_applied`), and acks only after commit: a bridge killed at any point applies every batch exactly once.
Several bridges share the durable consumer and scale out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass

import nats
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DataError, IntegrityError, connections, transaction
from nats.js.api import AckPolicy, ConsumerConfig

from quotes.ingest import TickRow, broker_quotes_after_commit, broker_quotes_insert
from suho.bus import get_bus
from suho.routers import SERVICE
from trading.ingest import (
    BalanceRow,
    HeartbeatRow,
    balances_after_commit,
    balances_insert,
    heartbeats_after_commit,
    heartbeats_insert,
)

log = logging.getLogger(__name__)
INGEST_STREAM = "SUHO_INGEST"
DURABLE = "data-bridge"
ROWS_PER_MESSAGE = 2_000  # the gateway's batch size in bridge mode: ≈ 300 KB of ticks as JSON
MAX_MESSAGE_BYTES = 512 * 1024  # NATS refuses a message over max_payload (1 MiB by default): stay well under it
ACK_WAIT_S = 10.0  # a batch a killed bridge fetched but never acked is redelivered after this long
KINDS = {
    "quotes": (TickRow, broker_quotes_insert, broker_quotes_after_commit),
    "balances": (BalanceRow, balances_insert, balances_after_commit),
    "heartbeats": (HeartbeatRow, heartbeats_insert, heartbeats_after_commit),
}


def ingest_publish(kind: str, rows: list) -> int:
    """Gateway side: hand a batch to JetStream and return once it is stored (raises if it is not).

    The gateway's batcher sends at most ROWS_PER_MESSAGE rows; a batch still over MAX_MESSAGE_BYTES (long heartbeat
    error texts) goes as halves, each with its own content-hash id, so a retried batch stores no half twice."""
    payload = json.dumps(rows, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE_BYTES and len(rows) > 1:
        middle = len(rows) // 2
        return ingest_publish(kind, rows[:middle]) + ingest_publish(kind, rows[middle:])
    msg_id = f"{kind}:{hashlib.sha256(payload).hexdigest()}"
    get_bus().jetstream_publish(f"suho.ingest.{kind}", payload, msg_id=msg_id)
    return len(rows)


def ingest_publish_nothing_after(rows: list) -> None:
    """In bridge mode the gateway has nothing to do after the publish: the bridge caches and fans out."""


@dataclass(frozen=True)
class Batch:
    seq: int
    kind: str
    rows: list


def batches_apply(batches: list[Batch]) -> list[Batch]:
    """Write every batch not applied before, in one transaction; return the ones applied now."""
    fresh = []
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        for batch in batches:
            cursor.execute(
                "INSERT INTO suho_bridge_applied (stream, seq, applied_at) VALUES (%s, %s, now())"
                " ON CONFLICT (stream, seq) DO NOTHING RETURNING seq",
                [INGEST_STREAM, batch.seq],
            )
            if cursor.fetchone() is None:
                continue  # redelivered after a crash between our commit and our ack
            if batch.kind not in KINDS:  # a poison message must not stop the queue (and the bridge) for good
                log.error("bridge: batch #%s on unknown kind %r recorded and skipped", batch.seq, batch.kind)
                continue
            row_type, insert, _after = KINDS[batch.kind]
            try:
                with transaction.atomic(using=SERVICE):  # a savepoint: one refused batch must not wedge the queue
                    insert([row_type(*row) for row in batch.rows])
            except (DataError, IntegrityError, TypeError, KeyError):
                log.exception("bridge: batch #%s (%s) refused by the database; recorded and skipped", batch.seq,
                              batch.kind)  # fmt: skip
                continue
            fresh.append(batch)
    for batch in fresh:
        row_type, _insert, after = KINDS[batch.kind]
        try:
            after([row_type(*row) for row in batch.rows])
        except Exception:
            log.exception("bridge: cache/NATS after commit failed (rows are committed)")
    return fresh


def _rows(data: bytes) -> list:
    try:
        rows = json.loads(data)
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


def consumer_config(durable: str, ack_wait_s: float) -> ConsumerConfig:
    return ConsumerConfig(durable_name=durable, filter_subject="suho.ingest.>", ack_policy=AckPolicy.EXPLICIT,
                          ack_wait=ack_wait_s)  # fmt: skip


async def bridge_run(
    *, stop: asyncio.Event, fetch_batch: int = 64, idle_timeout_s: float = 1.0, durable: str = DURABLE,
    ack_wait_s: float = ACK_WAIT_S,
) -> int:  # fmt: skip
    """Pull, apply, ack until `stop` is set; returns how many messages this run applied.

    The durable consumer is created or updated with our ack wait (JetStream's default, 30 s, would hold up what a
    killed bridge had fetched for that long). Any ack wait is safe: a batch redelivered while another bridge still
    applies it waits on that bridge's row in suho_bridge_applied and is then skipped."""
    connection = await nats.connect(settings.NATS_URL, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    applied = 0
    try:
        jetstream = connection.jetstream()
        await jetstream.add_consumer(INGEST_STREAM, consumer_config(durable, ack_wait_s))
        subscription = await jetstream.pull_subscribe("suho.ingest.>", durable=durable, stream=INGEST_STREAM)
        while not stop.is_set():
            try:
                messages = await subscription.fetch(fetch_batch, timeout=idle_timeout_s)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's own when the server answers late: both idle
                continue
            batches = [Batch(m.metadata.sequence.stream, m.subject.rsplit(".", 1)[1], _rows(m.data)) for m in messages]
            await sync_to_async(batches_apply, thread_sensitive=False)(batches)
            for message in messages:
                await message.ack()
            applied += len(messages)
    finally:
        await connection.close()
    return applied
