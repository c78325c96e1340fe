"""The process's NATS connection: one per process, on a background event loop of its own.

Sync code (services after commit, Celery tasks, management commands) and async code (the EA gateway) publish
through the same connection; subscriptions deliver on the bus loop and hand messages to their owners
thread-safely. Every publish has a timeout; a failed publish is logged, never raised into the caller's commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import NamedTuple

import nats
from django.conf import settings
from nats import errors as nats_errors
from nats.aio.client import Client
from nats.protocol.command import pub_cmd
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
SUBJECT_UNSAFE = re.compile(r"[ \t\r\n]")  # would split or end a PUB line (nats-py refuses them the same way)


class PubBlock(NamedTuple):
    """Messages as one block of NATS PUB commands (each `pub_prefix(subject)`, the payload's size in bytes, CRLF, the
    payload, CRLF), made by `publish_batch` or by their producer (quotes.ingest.broker_quotes_live), for
    `publish_block`."""

    count: int
    data: bytes
    payload_bytes: int
    largest: int  # the largest payload, checked against the server's max_payload

    @classmethod
    def joined(cls, blocks: list[PubBlock]) -> PubBlock:
        return cls(sum(b.count for b in blocks), b"".join([b.data for b in blocks]),
                   sum(b.payload_bytes for b in blocks), max((b.largest for b in blocks), default=0))  # fmt: skip


def pub_prefix(subject: str) -> str:
    """The start of a PUB command, up to the payload's size: for a producer that writes its commands itself (ticks
    are tens of thousands a second) and makes this once per subject. `subject` must be free of whitespace
    (`subject_token`'s output) and the payload ASCII, so its length is its size in bytes."""
    return f"PUB {subject} "


async def publish_batch(client: Client, messages: list[tuple[str, bytes]]) -> None:
    """Publish many messages (no headers) as one write to the connection, with the checks `client.publish` makes
    for each: any bad message refuses the whole batch, before anything is sent."""
    if not messages:
        return
    subjects, sizes = [subject for subject, _data in messages], [len(data) for _subject, data in messages]
    if not all(subjects) or SUBJECT_UNSAFE.search("".join(subjects)):
        raise nats_errors.BadSubjectError
    block = b"".join([pub_cmd(subject, "", data) for subject, data in messages])
    await publish_block(client, PubBlock(len(messages), block, sum(sizes), max(sizes)))


async def publish_block(client: Client, block: PubBlock) -> None:
    """Publish a block of PUB commands as one write to the connection: what `client.publish` does per message,
    with its checks of the connection and the payload size, but one hand-over to nats-py's buffer and flusher for
    the lot. Each `publish` is three coroutine calls (~7 µs a message here, against ~3 for a batch)."""
    if not block.count:
        return
    if client.is_closed:
        raise nats_errors.ConnectionClosedError
    if client.is_draining_pubs:
        raise nats_errors.ConnectionDrainingError
    if block.largest > client.max_payload:
        raise nats_errors.MaxPayloadError
    pending_limit = client._max_pending_size  # the limit `publish` checks while reconnecting
    if not client.is_connected and (pending_limit <= 0 or len(block.data) + client.pending_data_size > pending_limit):
        raise nats_errors.OutboundBufferLimitError
    client.stats["out_msgs"] += block.count
    client.stats["out_bytes"] += block.payload_bytes
    await client._send_command(block.data)  # as `publish` does, once for the block
    if client._flush_queue is not None and client._flush_queue.empty():  # as `publish` does
        await client._flush_pending()  # wakes the flusher, which writes what is pending


class Bus:
    def __init__(self, url: str):
        self.url = url
        self.loop = asyncio.new_event_loop()
        self._client: Client | None = None
        self.reconnected: list[Callable[[], None]] = []  # run on the bus loop after every reconnect
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="suho-bus", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    async def _connected(self) -> Client:
        if self._client is None or self._client.is_closed:
            self._client = await nats.connect(
                nats_servers(self.url),  # a cluster: every server, tried in turn on connect and reconnect
                name="suho",
                connect_timeout=CONNECT_TIMEOUT_S,
                max_reconnect_attempts=-1,  # keep trying through a NATS restart
                reconnect_time_wait=0.5,
                pending_size=64 * 1024 * 1024,  # buffer publishes while reconnecting
                error_cb=_log_nats_error,
                reconnected_cb=self._on_reconnected,
            )
        return self._client

    async def _on_reconnected(self) -> None:
        log.warning("NATS: reconnected to %s", getattr(self._client and self._client.connected_url, "netloc", self.url))
        for callback in list(self.reconnected):
            try:
                callback()
            except Exception:
                log.exception("reconnect callback failed")

    def submit(self, coro: Awaitable) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def _publish(self, subject: str, payload: bytes, headers: dict | None) -> None:
        client = await self._connected()
        await client.publish(subject, payload, headers=headers)

    def publish(self, subject: str, payload: bytes | dict, *, msg_id: str | None = None, wait: bool = False) -> None:
        """Publish from any thread. `msg_id` becomes `Nats-Msg-Id` (JetStream de-duplication)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        future = self.submit(self._publish(subject, data, headers))
        if wait:
            future.result(timeout=PUBLISH_TIMEOUT_S)
        else:
            future.add_done_callback(_log_failure(subject))

    async def apublish(self, subject: str, payload: bytes, *, msg_id: str | None = None) -> None:
        """Publish from another event loop without blocking it."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await asyncio.wait_for(asyncio.wrap_future(self.submit(self._publish(subject, payload, headers))),
                               PUBLISH_TIMEOUT_S)  # fmt: skip

    def jetstream_publish(self, subject: str, payload: bytes, *, msg_id: str, timeout: float = PUBLISH_TIMEOUT_S):
        """Publish and wait until JetStream has stored it (raises on failure). Returns the PubAck."""

        async def _publish():
            client = await self._connected()
            return await client.jetstream(timeout=timeout).publish(subject, payload, headers={"Nats-Msg-Id": msg_id})

        return self.submit(_publish()).result(timeout=timeout + 1)

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Fire a batch of volume messages (balances, heartbeats, reference quotes) in one hop to the bus loop."""

        async def _all() -> None:
            await publish_batch(await self._connected(), messages)

        self.submit(_all()).add_done_callback(_log_failure("batch"))

    def publish_block(self, block: PubBlock) -> None:
        """Fire a block of PUB commands (ticks) in one hop to the bus loop."""

        async def _block() -> None:
            await publish_block(await self._connected(), block)

        self.submit(_block()).add_done_callback(_log_failure("block"))

    def subscribe(self, subject: str, handler: Callable[[str, bytes], None], queue: str = "") -> Future:
        """`handler(subject, data)` runs on the bus loop: keep it short and hand work to its owner's loop."""

        async def _subscribe():
            client = await self._connected()

            async def _on_message(msg) -> None:
                try:
                    handler(msg.subject, msg.data)
                except Exception:
                    log.exception("bus handler failed", extra={"task": subject})

            return await client.subscribe(subject, queue=queue, cb=_on_message)

        return self.submit(_subscribe())

    def serve(self, subject: str, handler: Callable[[bytes], Awaitable[bytes]]) -> Future:
        """Answer NATS requests on `subject`: `await handler(data)` runs on the bus loop and its bytes are the reply.
        A handler that fails is logged and answered with an empty reply."""

        async def _serve():
            client = await self._connected()

            async def _on_request(msg) -> None:
                try:
                    reply = await handler(msg.data)
                except Exception:
                    log.exception("bus request handler failed", extra={"task": subject})
                    reply = b""
                if msg.reply:
                    await msg.respond(reply)

            return await client.subscribe(subject, cb=_on_request)

        return self.submit(_serve())

    async def arequest(self, subject: str, payload: bytes, *, timeout: float) -> bytes:
        """Send a request from another event loop and wait at most `timeout` for the reply (raises TimeoutError,
        or nats' NoRespondersError when nothing serves the subject)."""

        async def _request() -> bytes:
            client = await self._connected()
            return (await client.request(subject, payload, timeout=timeout)).data

        return await asyncio.wait_for(asyncio.wrap_future(self.submit(_request())), timeout + 1)

    def flush(self, timeout: float = PUBLISH_TIMEOUT_S) -> None:
        async def _flush():
            client = await self._connected()
            await client.flush(timeout=timeout)

        self.submit(_flush()).result(timeout=timeout + 1)

    def close(self) -> None:
        async def _close():
            if self._client is not None and not self._client.is_closed:
                await self._client.drain()

        try:
            self.submit(_close()).result(timeout=PUBLISH_TIMEOUT_S)
        except Exception:
            log.warning("bus close failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def _log_nats_error(error: Exception) -> None:
    log.warning("NATS: %s: %s", type(error).__name__, error)


def _log_failure(subject: str):
    def _check(future: Future) -> None:
        if future.exception() is not None:
            log.error("NATS publish failed: %s", future.exception(), extra={"task": subject})

    return _check


_buses: dict[str, Bus] = {}
_bus_lock = threading.Lock()


def get_bus() -> Bus:
    """The process's bus for settings.NATS_URL (one per URL: tests point some code at a private server)."""
    with _bus_lock:
        bus = _buses.get(settings.NATS_URL)
        if bus is None:
            bus = _buses[settings.NATS_URL] = Bus(settings.NATS_URL)
        return bus


def bus_discard(url: str) -> None:
    """Stop and forget the bus for `url` (a test's private server that is gone)."""
    with _bus_lock:
        bus = _buses.pop(url, None)
    if bus is not None:
        bus.loop.call_soon_threadsafe(bus.loop.stop)


class BusCollector:
    """`suho_nats_publish_pending_bytes` at scrape time: bytes this process's buses have accepted but not yet
    written to NATS (grows while NATS is away; the client buffers up to 64 MiB per connection)."""

    def describe(self):
        return []

    def collect(self):
        with _bus_lock:
            clients = [bus._client for bus in _buses.values()]
        pending = sum(client.pending_data_size for client in clients if client is not None)
        yield GaugeMetricFamily("suho_nats_publish_pending_bytes", "Bytes published but not yet sent to NATS",
                                value=pending)  # fmt: skip


REGISTRY.register(BusCollector())


def nats_servers(url: str) -> list[str]:
    """NATS_URL as the server list nats-py takes: one URL, or a cluster's servers comma-separated
    (`nats://n1:4222,nats://n2:4222,nats://n3:4222`). nats-py reads a single string as one URL (it would not split
    it), and fails over only among the servers in its list (plus those the cluster gossips)."""
    return [server.strip() for server in url.split(",") if server.strip()]


def subject_token(value: str) -> str:
    """A broker symbol as one subject token: `US30.cash` → `US30_cash` (dots, spaces and wildcards split subjects)."""
    return "".join("_" if char in ".*> \t\r\n" else char for char in value) or "_"
