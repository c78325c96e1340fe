"""JetStream streams as code (ARCHITECTURE §4, seed's Kafka role): created or updated idempotently at start-up.

- MT5_ACCOUNT: account events EAs send (`mt5.account.*.{profile,balance,heartbeat,trades.>}`) — replayable by the ML
  engine and analytics. Ticks (`mt5.account.*.quotes.>`) are not stored: they go to live subscribers on core NATS and
  their history is `mt5_broker_quotes`. With `sync_interval: always` JetStream stores a few thousand messages a second
  on this class of machine, and core-published messages it cannot keep up with are dropped ("IPQ len limit reached"):
  at a gateway's 24,000 ticks/s most ticks were silently missing from the stream, and storing the rest cost the CPU
  the database needed.
- MT5_OUTBOUND: signals, configuration and commands (`mt5.signal.>`, `mt5.config.>`, `mt5.command.>`).
- SUHO_INGEST: volume rows on their way to the data bridge (`suho.ingest.>`, work queue; INGEST_MODE=bridge).
Retention by age and size, a de-duplication window (`Nats-Msg-Id`), file storage, replicas from settings.
PostgreSQL stays the source of truth: a trade event is durable when it is committed there, not when NATS acks it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
from django.conf import settings
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from suho.bus import nats_servers

JETSTREAM_DISABLED = "NATS at {url} has no JetStream: start nats-server with -js (or `jetstream {{}}` in its config)"
NATS_UNREACHABLE = "cannot reach NATS at {url}: {error}"
SETUP_TIMEOUT_S = 10
JETSTREAM_TEMPORARILY_UNAVAILABLE = 10008  # JetStream's err_code with a 503
NO_SUITABLE_PEERS = 10005  # with a 400, "no suitable peers for placement, …": peers rejoining, or too few for good
SETUP_DEADLINE_S = 60  # a cluster that has just formed can time out its first replicated stream operations
SETUP_RETRY_S = 1.0
STREAM_NOT_PLACED = (
    "JetStream found no servers to place stream {stream} on ({replicas} replicas, NATS_STREAM_REPLICAS) by the setup's "
    "deadline ({waited_s} s): {error}. Are that many JetStream servers in the cluster, up, and with room for it?"
)
REPLAY_TIMEOUT_S = 30
ACCOUNT_EVENT_KINDS = ("profile", "balance", "heartbeat", "trades")  # what MT5_ACCOUNT stores, per account
TICKS_NOT_STORED = (
    "ticks are not kept in MT5_ACCOUNT: subscribe to mt5.account.{id}.quotes.> for live ones, read mt5_broker_quotes "
    "for their history"
)


def stream_configs() -> list[StreamConfig]:
    common = {
        "retention": RetentionPolicy.LIMITS,
        "storage": StorageType.FILE,
        "discard": DiscardPolicy.OLD,
        "num_replicas": settings.NATS_STREAM_REPLICAS,
        "duplicate_window": float(settings.NATS_DUPLICATE_WINDOW_S),
    }
    return [
        StreamConfig(
            name="MT5_ACCOUNT",
            description="Account events MT5 EAs send (not ticks), after they are committed",
            subjects=[account_subject(kind=kind) for kind in ACCOUNT_EVENT_KINDS],
            max_age=settings.NATS_ACCOUNT_STREAM_MAX_AGE_H * 3600.0,
            max_bytes=settings.NATS_ACCOUNT_STREAM_MAX_BYTES,
            **common,
        ),
        StreamConfig(
            name="MT5_OUTBOUND",
            description="Signals, configuration and commands for MT5 EAs",
            subjects=["mt5.signal.>", "mt5.config.>", "mt5.command.>"],
            max_age=settings.NATS_OUTBOUND_STREAM_MAX_AGE_H * 3600.0,
            max_bytes=settings.NATS_OUTBOUND_STREAM_MAX_BYTES,
            **common,
        ),
        StreamConfig(  # the data bridge's queue (INGEST_MODE=bridge): a batch leaves once a bridge committed it
            name="SUHO_INGEST",
            description="Volume rows (ticks, balances, heartbeats) from gateways to data bridges",
            subjects=["suho.ingest.>"],
            max_age=settings.NATS_ACCOUNT_STREAM_MAX_AGE_H * 3600.0,
            max_bytes=settings.NATS_ACCOUNT_STREAM_MAX_BYTES,
            **{**common, "retention": RetentionPolicy.WORK_QUEUE},
        ),
    ]


async def _streams_ensure(url: str) -> list[str]:
    try:
        connection = await nats.connect(nats_servers(url), connect_timeout=SETUP_TIMEOUT_S, max_reconnect_attempts=1,
                                        allow_reconnect=False)  # fmt: skip
    except Exception as exc:
        raise RuntimeError(NATS_UNREACHABLE.format(url=url, error=exc)) from exc
    try:
        jetstream = connection.jetstream(timeout=SETUP_TIMEOUT_S)
        deadline = asyncio.get_running_loop().time() + SETUP_DEADLINE_S
        try:
            await _until(deadline, jetstream.account_info)
        except Exception as exc:
            raise RuntimeError(JETSTREAM_DISABLED.format(url=url)) from exc
        return [await _stream_placed(deadline, jetstream, config) for config in stream_configs()]
    finally:
        await connection.close()


async def _until(deadline: float, call, *args):
    """`call(*args)`, tried again every `SETUP_RETRY_S` until `deadline` while the cluster may still be forming
    (`_cluster_still_forming`). A server without JetStream answers at once (no responders) and is not waited for."""
    while True:
        try:
            return await call(*args)
        except (NatsTimeoutError, ServiceUnavailableError, BadRequestError) as exc:
            if not _cluster_still_forming(exc) or asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(SETUP_RETRY_S)


def _cluster_still_forming(exc: Exception) -> bool:
    """Whether JetStream answered as a cluster does while it forms: a timeout or "temporarily unavailable" (no meta
    leader yet, or the first replicated operations of a new cluster), or "no suitable peers for placement" (restarted
    peers not yet seen again). The last also means too few servers for the replicas for good: the deadline bounds
    that wait, and `_stream_placed` then says so."""
    if isinstance(exc, NatsTimeoutError):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return exc.err_code == JETSTREAM_TEMPORARILY_UNAVAILABLE
    return isinstance(exc, BadRequestError) and exc.err_code == NO_SUITABLE_PEERS


async def _stream_placed(deadline: float, jetstream, config: StreamConfig) -> str:
    try:
        return await _until(deadline, _stream_ensure, jetstream, config)
    except BadRequestError as exc:
        if exc.err_code != NO_SUITABLE_PEERS:
            raise
        message = STREAM_NOT_PLACED.format(stream=config.name, replicas=config.num_replicas,
                                           waited_s=SETUP_DEADLINE_S, error=exc.description)  # fmt: skip
        raise RuntimeError(message) from exc


async def _stream_ensure(jetstream, config: StreamConfig) -> str:
    """Create or update one stream. Safe to try again: a create that timed out but happened is an update next."""
    try:
        await jetstream.stream_info(config.name)
    except NotFoundError:
        await jetstream.add_stream(config)
        return f"{config.name}: created"
    await jetstream.update_stream(config)
    return f"{config.name}: updated"


def streams_ensure() -> list[str]:
    """Create or update every stream; raises RuntimeError naming the problem when JetStream is off or a stream finds
    no servers for its replicas."""
    return asyncio.run(_streams_ensure(settings.NATS_URL))


@dataclass(frozen=True)
class StreamEvent:
    seq: int
    subject: str
    time: datetime
    data: bytes


def account_subject(*, account_id: str | None = None, kind: str) -> str:
    """`mt5.account.{account_id or *}.{kind}`, with `.>` after trades (open, close, modify)."""
    suffix = f"{kind}.>" if kind == "trades" else kind
    return f"mt5.account.{account_id or '*'}.{suffix}"


async def _replay(subjects: list[str], since: datetime | None, start_seq: int | None, limit: int) -> list[StreamEvent]:
    """One ephemeral consumer per subject (a filter must lie inside one of the stream's subjects on NATS < 2.10),
    merged back into stream order up to the stream's last message when the replay began: a kind read later must not
    add events that a kind read earlier could not have seen."""
    connection = await nats.connect(nats_servers(settings.NATS_URL), connect_timeout=SETUP_TIMEOUT_S)
    try:
        jetstream = connection.jetstream()
        last_seq = (await jetstream.stream_info("MT5_ACCOUNT")).state.last_seq  # one cut for every kind
        per_subject = [await _replay_subject(jetstream, subject, since, start_seq, limit) for subject in subjects]
        events = (event for events in per_subject for event in events if event.seq <= last_seq)
        return sorted(events, key=lambda event: event.seq)[:limit]
    finally:
        await connection.close()


async def _replay_subject(jetstream, subject: str, since, start_seq, limit: int) -> list[StreamEvent]:
    """What matched when the consumer was made (its num_pending), up to `limit`. Acked one by
    one: a message that reaches the client after a fetch gave up is redelivered (ack wait 2 s) instead of lost, as it
    would be with no acks; a redelivered duplicate is dropped by its sequence."""
    if start_seq is not None:
        start = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start_seq}
    elif since is not None:
        start = {"deliver_policy": DeliverPolicy.BY_START_TIME,
                 "opt_start_time": since.astimezone(UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
    else:
        start = {"deliver_policy": DeliverPolicy.ALL}
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=2.0, inactive_threshold=30.0, **start)
    subscription = await jetstream.pull_subscribe(subject, stream="MT5_ACCOUNT", config=config)
    wanted = min(limit, (await subscription.consumer_info()).num_pending)
    events: dict[int, StreamEvent] = {}
    deadline = asyncio.get_running_loop().time() + REPLAY_TIMEOUT_S
    while len(events) < wanted and asyncio.get_running_loop().time() < deadline:
        try:
            messages = await subscription.fetch(min(256, wanted - len(events)), timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for m in messages:
            seq = m.metadata.sequence.stream
            events.setdefault(seq, StreamEvent(seq, m.subject, m.metadata.timestamp, m.data))
            await m.ack()
    await subscription.unsubscribe()
    return list(events.values())  # at most `wanted`; _replay orders every kind's events together


def stream_replay(
    *, account_id: str | None = None, kind: str | None = None, since: datetime | None = None,
    start_seq: int | None = None, limit: int = 1000,
) -> list[StreamEvent]:  # fmt: skip
    """Account events stored in MT5_ACCOUNT, in stream order, from a time or a sequence (ephemeral consumers).
    Raises ValueError for a kind the stream does not keep (ticks among them)."""
    if kind == "quotes":
        raise ValueError(TICKS_NOT_STORED)
    if kind is not None and kind not in ACCOUNT_EVENT_KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(ACCOUNT_EVENT_KINDS)}")
    kinds = [kind] if kind else list(ACCOUNT_EVENT_KINDS)
    subjects = [account_subject(account_id=account_id, kind=k) for k in kinds]
    return asyncio.run(_replay(subjects, since, start_seq, limit))
