"""The data bridge (seed §1): volume rows travel gateway → JetStream → bridge → PostgreSQL (`INGEST_MODE=bridge`).

The gateway publishes each batch to `suho.ingest.{kind}` and treats JetStream's ack as acceptance (the message id
is a hash of the batch, so a retried publish is stored once). `manage.py data_bridge` pulls with a durable consumer,
writes the rows with the same set-based inserts as direct mode, records each batch's message id in the same
transaction (`suho_bridge_applied`), and acks only after commit: a bridge killed at any point applies every batch
exactly once. The record is keyed on the message id, not the stream sequence, so a stream deleted and created again
(its sequences restart at 1) never has a new batch mistaken for an old one. Several bridges share the durable
consumer and scale out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import nats
import nats.errors
import nats.js.errors
from django.conf import settings
from django.db import DataError, IntegrityError, connections, transaction
from django.utils import timezone
from nats.js.api import AckPolicy, ConsumerConfig

from suho.asyncdb import db_thread
from suho.bus import get_bus, nats_servers
from suho.routers import SERVICE
from trading.ingest import VOLUME_KINDS

log = logging.getLogger(__name__)
INGEST_STREAM = "SUHO_INGEST"
DURABLE = "data-bridge"
ROWS_PER_MESSAGE = 2_000  # the gateway's batch size in bridge mode: ≈ 300 KB of ticks as JSON
MAX_MESSAGE_BYTES = 512 * 1024  # NATS refuses a message over max_payload (1 MiB by default): stay well under it
MSG_ID_MAX = 100  # suho_bridge_applied.msg_id
FETCH_RETRY_S = 0.5  # after a fetch a NATS failover refused (503 while the consumer's leader is elected)
ACK_WAIT_S = 10.0  # a batch a killed bridge fetched but never acked is redelivered after this long


def ingest_publish(kind: str, rows: list) -> int:
    """Gateway side: hand a batch to JetStream and return once it is stored (raises if it is not).

    The gateway's batcher sends at most ROWS_PER_MESSAGE rows; a batch still over MAX_MESSAGE_BYTES (long heartbeat
    error texts) goes as halves, each with its own content-hash id, so a retried batch stores no half twice."""
    payload = json.dumps(rows, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE_BYTES and len(rows) > 1:
        middle = len(rows) // 2
        return ingest_publish(kind, rows[:middle]) + ingest_publish(kind, rows[middle:])
    get_bus().jetstream_publish(f"suho.ingest.{kind}", payload, msg_id=batch_msg_id(kind, payload))
    return len(rows)


def batch_msg_id(kind: str, payload: bytes) -> str:
    """A batch's identity: its kind and a hash of its bytes (its rows carry their account and timestamps)."""
    return f"{kind}:{hashlib.sha256(payload).hexdigest()}"


def ingest_publish_nothing_after(rows: list) -> None:
    """In bridge mode the gateway has nothing to do after the publish: the bridge caches and fans out."""


@dataclass(frozen=True)
class Batch:
    msg_id: str  # Nats-Msg-Id: what makes a redelivered batch recognisable
    seq: int  # the stream sequence, for the logs
    kind: str
    rows: list


def batches_apply(batches: list[Batch]) -> list[Batch]:
    """Write every batch not applied before, in one transaction; return the ones applied now."""
    fresh = []
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        for batch in batches:
            cursor.execute(
                "INSERT INTO suho_bridge_applied (msg_id, stream, seq, applied_at) VALUES (%s, %s, %s, now())"
                " ON CONFLICT (msg_id) DO NOTHING RETURNING seq",
                [batch.msg_id, INGEST_STREAM, batch.seq],
            )
            if cursor.fetchone() is None:
                continue  # redelivered after a crash between our commit and our ack
            if batch.kind not in VOLUME_KINDS:  # a poison message must not stop the queue (and the bridge) for good
                log.error("bridge: batch #%s on unknown kind %r recorded and skipped", batch.seq, batch.kind)
                continue
            kind = VOLUME_KINDS[batch.kind]
            try:
                with transaction.atomic(using=SERVICE):  # a savepoint: one refused batch must not wedge the queue
                    kind.insert([kind.row(*row) for row in batch.rows])
            except (DataError, IntegrityError, TypeError, KeyError):
                log.exception("bridge: batch #%s (%s) refused by the database; recorded and skipped", batch.seq,
                              batch.kind)  # fmt: skip
                continue
            fresh.append(batch)
    for batch in fresh:
        kind = VOLUME_KINDS[batch.kind]
        try:
            kind.after_commit([kind.row(*row) for row in batch.rows])
        except Exception:
            log.exception("bridge: cache/NATS after commit failed (rows are committed)")
    return fresh


def bridge_applied_prune(*, now: datetime | None = None) -> int:
    """Forget batches older than SUHO_INGEST keeps messages (plus a day): none of them can be delivered again.
    A stream without an age limit (0) could redeliver any of them: then nothing is forgotten."""
    if settings.NATS_ACCOUNT_STREAM_MAX_AGE_H <= 0:
        return 0
    keep = timedelta(hours=settings.NATS_ACCOUNT_STREAM_MAX_AGE_H, days=1)
    with connections[SERVICE].cursor() as cursor:
        cursor.execute("DELETE FROM suho_bridge_applied WHERE applied_at < %s", [(now or timezone.now()) - keep])
        return cursor.rowcount


def _message_batch(message) -> Batch:
    kind = message.subject.rsplit(".", 1)[1]
    msg_id = (message.headers or {}).get("Nats-Msg-Id", "")
    if not 0 < len(msg_id) <= MSG_ID_MAX:  # not from our gateway: a key that fits the column, from the content
        msg_id = batch_msg_id(kind, message.data)
    return Batch(msg_id, message.metadata.sequence.stream, kind, _rows(message.data))


def _rows(data: bytes) -> list:
    try:
        rows = json.loads(data)
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


async def _ack_all(messages: list) -> None:
    """Ack committed batches. An ack lost to a failover is only logged: the batch comes back after the ack wait and
    is skipped by its suho_bridge_applied row, as after a bridge killed between commit and ack."""
    for message in messages:
        try:
            await message.ack()
        except nats.errors.Error as exc:
            log.warning(
                "bridge: ack of batch #%s lost (%s); it is redelivered and skipped",
                message.metadata.sequence.stream,
                exc,
            )
            return


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
    applies it waits on that bridge's row in suho_bridge_applied and is then skipped. A NATS failover (a server of
    the cluster gone, the consumer's leader re-elected) refuses fetches for a few seconds: retried, not fatal."""
    connection = await nats.connect(nats_servers(settings.NATS_URL), max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.5)  # fmt: skip
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
            except (nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError, nats.errors.NoRespondersError,
                    nats.errors.StaleConnectionError, nats.errors.ConnectionReconnectingError) as exc:  # fmt: skip
                if connection.is_closed:
                    raise
                log.warning("bridge: fetch failed (%s: %s); a NATS server or the consumer's leader is gone, retrying",
                            type(exc).__name__, exc)  # fmt: skip
                await asyncio.sleep(FETCH_RETRY_S)  # the client reconnects to another server; a new leader is elected
                continue
            batches = [_message_batch(m) for m in messages]
            await db_thread(batches_apply)(batches)
            applied += len(messages)
            await _ack_all(messages)
    finally:
        await connection.close()
    return applied
