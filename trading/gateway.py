"""The EA gateway's process-wide parts: volume batchers and the NATS → socket delivery hub (ARCHITECTURE §4).

- `Batcher`: rows from every connection of the process, flushed every ≤ 250 ms or `max_rows`, in a worker thread,
  so the event loop never waits on the database. A failed flush keeps its rows and retries (bounded buffer). A
  batch's after-commit work (cache, NATS) runs while the next batch is inserted, one batch of it at a time, in order.
- `DeliveryHub`: one NATS subscription per process for `mt5.signal.*.*`, `mt5.config.*.*`, `mt5.command.*.*`,
  routed through an in-process map account → connection (not channels-redis groups, which drop messages). It also
  serves this process's takeover subject (`suho.session.takeover.<node>`): a newer session of an account, claimed
  on another process, closes ours (decision 0017). The map keeps only the newest session it knows of per account.
  A message committed by this process for an EA connected to it is handed to the socket right after the commit,
  before its publish, and the NATS copy is then skipped here (decision 0037).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import nats
from django.conf import settings
from django.db import DataError, IntegrityError
from nats.errors import NoRespondersError
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from binproto import CloseCode
from suho.asyncdb import db_thread, db_thread_submit
from suho.bus import CONNECT_TIMEOUT_S, PubBlock, get_bus, nats_servers, publish_block, subject_token
from suho.drain import drain_hook_register
from suho.metrics import batch_flush_observe
from suho.outbox import outbox_committed_listen
from trading.bridge import ROWS_PER_MESSAGE, ingest_publish, ingest_publish_nothing_after
from trading.connection import (
    RESYNCS_PER_ROUND_TRIP,
    TRANSACTIONS_PER_ROUND_TRIP,
    ea_disconnects,
    ea_resyncs,
    ea_token_hellos,
)
from trading.ingest import VOLUME_KINDS

log = logging.getLogger(__name__)
FLUSH_INTERVAL_S = 0.25
MAX_ROWS_PER_FLUSH = 20_000
MAX_BUFFERED_ROWS = 500_000  # ≈ 25 s of the target load: beyond it the oldest volume rows are dropped, loudly
RETRY_DELAY_S = 1.0
NODE = subject_token(f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")  # this process, for takeovers
TAKEOVER_TIMEOUT_S = 1.0
# After "no responders", takeovers to that process are skipped this long: gone after a deploy (its name, with its pid
# and a random suffix, never comes back), a deploy's reconnect storm asks it every 2 s instead of once per EA (~0.3-0.5
# ms each, issue 21); a live process that was only between two NATS connections is skipped for at most these 2 s,
# about as long as a NATS reconnect takes
NODE_GONE_S = 2.0
MAX_GONE_NODES = 1_000
# Messages delivered here at their commit whose NATS copy has not come back yet (NATS slow or down); past this many
# the oldest is forgotten, and its copy, when the drain publishes it, reaches the EA a second time: the session drops
# it while the first is unacknowledged, and an EA answers a repeated id with its last ACK (docs/protocol.md §8).
MAX_DELIVERED_AT_COMMIT = 4_096
SESSION_REPLACED_REASON = "a newer connection for this account took over"


def takeover_subject(node: str) -> str:
    return f"suho.session.takeover.{subject_token(node)}"


class Batcher:
    def __init__(self, name: str, insert: Callable[[list], int], after_commit: Callable[[list], None], *,
                 max_rows: int = MAX_ROWS_PER_FLUSH):  # fmt: skip
        self.name = name
        self.max_rows = max_rows  # rows per write: one INSERT (direct mode) or one JetStream message (bridge mode)
        self._insert = insert
        self._after_commit = after_commit
        self._rows: list = []
        self._retry: list | None = None
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._flush_lock_loop: asyncio.AbstractEventLoop | None = None
        self._after: asyncio.Task | None = None  # the last batch's after-commit work, maybe still running
        self.flushed_rows = 0
        self.dropped_rows = 0
        self.last_flush_ms = 0.0

    def add(self, rows: list) -> None:
        self._rows.extend(rows)
        if len(self._rows) > MAX_BUFFERED_ROWS:
            excess = len(self._rows) - MAX_BUFFERED_ROWS
            del self._rows[:excess]
            self.dropped_rows += excess
            log.error("%s batcher over capacity: dropped %d oldest rows", self.name, excess)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # one loop per process in production; tests start a loop per test
            self._loop, self._wakeup, self._task, self._after = loop, asyncio.Event(), None, None
        if len(self._rows) >= self.max_rows:
            self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"batcher-{self.name}")

    def _write(self, rows: list) -> None:
        started = time.perf_counter()
        self._insert(rows)
        self.last_flush_ms = (time.perf_counter() - started) * 1000
        batch_flush_observe(self.name, self.last_flush_ms)

    def _write_after_commit(self, rows: list) -> None:
        try:
            self._after_commit(rows)
        except Exception:
            log.exception("%s: cache/NATS after commit failed (rows are committed)", self.name)

    async def _after_commit_settled(self) -> None:
        """Wait for the last batch's after-commit work (if it started on this loop). Only `_flush`, under the lock,
        starts the next one, after this: the cache's latest quote never goes back to an older one."""
        after = self._after
        if after is not None and after.get_loop() is asyncio.get_running_loop():
            try:
                await asyncio.shield(after)  # a cancelled waiter must not cancel the work it waits for
            except Exception:  # _write_after_commit logs its own errors; this is the thread hop failing
                log.exception("%s: after-commit work failed (rows are committed)", self.name)
        if self._after is after:  # not reached when cancelled: the work is still running and stays the last
            self._after = None

    def idle(self) -> bool:
        """Nothing buffered, and no write or after-commit work under way: every row added so far is written and its
        after-commit work done, so a flush would return at once."""
        lock = self._flush_lock
        return not self._rows and not self._retry and self._after is None and (lock is None or not lock.locked())

    async def flush(self) -> None:
        """Write what is buffered and finish its after-commit work. One flush at a time: a caller's flush (tests,
        shutdown) returns only after the rows the background task had already taken are written too."""
        await self._flush_locked()
        await self._after_commit_settled()

    async def _flush_locked(self) -> None:
        loop = asyncio.get_running_loop()
        if self._flush_lock_loop is not loop:
            self._flush_lock, self._flush_lock_loop = asyncio.Lock(), loop
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        while self._retry or self._rows:
            if self._retry:  # the very same batch again: in bridge mode its message id must not change
                rows, self._retry = self._retry, None
            else:
                rows, self._rows = self._rows[: self.max_rows], self._rows[self.max_rows :]
            try:
                await db_thread(self._write)(rows)  # while the last after runs
                self.flushed_rows += len(rows)
            except (DataError, IntegrityError):
                await self._after_commit_settled()
                await self._isolate(rows)
                continue
            except Exception:
                log.exception("%s flush of %d rows failed; retrying", self.name, len(rows))
                self._retry = rows  # the database (or JetStream) is unreachable: keep them first in line
                await asyncio.sleep(RETRY_DELAY_S)
                return
            await self._after_commit_settled()
            self._after = asyncio.get_running_loop().create_task(db_thread(self._write_after_commit)(rows))

    async def _isolate(self, rows: list) -> None:
        """A batch the database refuses for its data: write it in halves, so only the offending rows are dropped
        (logged and counted) and the rest of the stream keeps flowing."""
        if len(rows) == 1:
            self.dropped_rows += 1
            log.error("%s: dropped a row the database refuses: %r", self.name, rows[0])
            return
        middle = len(rows) // 2
        for half in (rows[:middle], rows[middle:]):
            try:
                await db_thread(self._write)(half)
                self.flushed_rows += len(half)
            except (DataError, IntegrityError):
                await self._isolate(half)
                continue
            await db_thread(self._write_after_commit)(half)

    async def _run(self) -> None:
        while self._rows or self._retry:
            try:
                await asyncio.wait_for(self._wakeup.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wakeup.clear()
            await self._flush_locked()  # its after-commit work overlaps the next batch's insert
            if not (self._rows or self._retry):
                await self._after_commit_settled()  # rows added meanwhile find this task running: the loop looks again


_batchers: dict[str, Batcher] = {}
_metered: dict[str, Batcher] = {}  # every batcher of the process, by name, for /metrics


def batcher_meter(item: Batcher) -> Batcher:
    """Count `item`'s written and dropped rows in /metrics under its name (the volume batchers are metered when
    made; the outbound bookkeeping's registers itself)."""
    _metered[item.name] = item
    return item


def batcher(kind: str) -> Batcher:
    """The process's batcher for a kind of trading.ingest.VOLUME_KINDS, the table the data bridge writes with too
    (created on first use in the running loop)."""
    if kind not in _batchers:
        volume = VOLUME_KINDS[kind]  # KeyError for a kind that is none
        if settings.INGEST_MODE == "bridge":  # rows go to JetStream; `manage.py data_bridge` writes them
            _batchers[kind] = Batcher(kind, partial(ingest_publish, kind), ingest_publish_nothing_after,
                                      max_rows=ROWS_PER_MESSAGE)  # fmt: skip
        else:
            _batchers[kind] = Batcher(kind, volume.insert, volume.after_commit)
        batcher_meter(_batchers[kind])
    return _batchers[kind]


LIVE_CONNECT_RETRY_S = 5.0  # after a failed connect, the bus carries live messages this long before the next try
LIVE_PENDING_BYTES = 8 * 1024 * 1024  # what the live connection buffers while it reconnects; beyond it, dropped


class LivePublisher:
    """Volume messages published as their rows are decoded (ticks: VolumeKind.live), from the gateway's own event
    loop over a NATS connection of its own: no hand-over to the bus's thread, which has to wait for the GIL behind
    this loop (docs/BENCHMARKS.md, section 2–3, has the tick→subscriber figures). The first frame decoded after a
    publish starts a task; when it runs, in the loop's next turn, it publishes everything decoded until then as
    one write (`suho.bus.publish_block`): no timer, and no second hop. Until the connection is up, and while it
    reconnects, the bus carries them as before; a failed publish is logged (the rows are still stored: ticks are
    volume)."""

    def __init__(self) -> None:
        self._blocks: list[PubBlock] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None  # a nats Client on self._loop, once connected
        self._connecting = False
        self._connect_after = 0.0  # loop time
        self._tasks: set[asyncio.Task] = set()  # held until done: the loop keeps only weak references to tasks

    def add(self, block: PubBlock) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # one loop per process in production; tests start a loop per test
            self._loop, self._blocks, self._client, self._connecting, self._connect_after = loop, [], None, False, 0
        if not self._blocks:
            self._spawn(loop, self._publish(loop))
        self._blocks.append(block)

    async def _publish(self, loop: asyncio.AbstractEventLoop) -> None:
        blocks, self._blocks = self._blocks, []  # a frame decoded from now on starts the next task
        block = PubBlock.joined(blocks)
        client = self._client
        if client is not None and client.is_connected:
            try:
                await publish_block(client, block)
            except Exception as exc:  # noqa: BLE001 — reconnect buffer full, connection closed: volume, not money
                log.warning("live publish of %d messages failed: %s: %s", block.count, type(exc).__name__, exc)
            return
        get_bus().publish_block(block)
        if client is None and not self._connecting and loop.time() >= self._connect_after:
            self._connecting = True
            await self._connect(loop)

    def _spawn(self, loop: asyncio.AbstractEventLoop, coroutine) -> None:
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            client = await nats.connect(
                nats_servers(settings.NATS_URL), name="suho-live", connect_timeout=CONNECT_TIMEOUT_S,
                max_reconnect_attempts=-1, reconnect_time_wait=0.5, pending_size=LIVE_PENDING_BYTES,
                error_cb=_live_error,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 — NATS unreachable: the bus carries them, and we try again later
            log.warning("live publisher: no NATS connection of its own yet (%s: %s)", type(exc).__name__, exc)
            client = None
        if loop is not self._loop:  # a test's loop ended meanwhile
            if client is not None:
                await client.close()
            return
        self._client, self._connecting = client, False
        if client is None:
            self._connect_after = loop.time() + LIVE_CONNECT_RETRY_S

    async def close(self) -> None:
        """Send what is buffered and close the connection (the process is draining)."""
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            with contextlib.suppress(Exception):
                await client.flush(timeout=2)
            await client.close()


async def _live_error(error: Exception) -> None:
    log.warning("NATS (live publisher): %s: %s", type(error).__name__, error)


live_publisher = LivePublisher()


def volume_add(kind: str, rows: list) -> None:
    """Rows an EA sent: buffered for the kind's batched write, and published live where the kind says so (stored
    first: a live message that cannot be made must not cost the rows)."""
    batcher(kind).add(rows)
    live = VOLUME_KINDS[kind].live
    if live is not None:
        live_publisher.add(live(rows))


class SharedRoundTrips:
    """Database work that callers on the loop ask for, done for all that wait for a database thread in one call of
    `call_many` (the resync reads: `ea_resyncs`; the token HELLOs: `ea_token_hellos`; the disconnects:
    `ea_disconnects`): in a reconnect storm, in a drain, and after a NATS reconnect (every EA of the process at once),
    the calls queue behind the database threads, and the thread that takes them does all that wait by then (issue 21:
    each EA's was a thread hop, a pooled connection and a round trip of its own). An EA that asks on a quiet process
    is served at once, alone, as before. A call whose caller was cancelled meanwhile (its EA gone) is skipped, or its
    outcome dropped, unless `made_if_cancelled` (bookkeeping that must not be lost: a disconnect's)."""

    def __init__(
        self, call_many: Callable[[list], list], *, per_round_trip: int, made_if_cancelled: bool = False
    ) -> None:
        self._call_many = call_many
        self._per_round_trip = per_round_trip  # of `call_many`: only to count its round trips
        self._made_if_cancelled = made_if_cancelled
        self._lock = threading.Lock()  # the waiting list is appended to on the loop and taken in a database thread
        self._waiting: list[tuple[object, asyncio.Future]] = []
        self._queued = False  # a database thread's run is submitted and has not yet taken the waiting calls
        self.calls = 0  # callers served, and the round trips that took (/metrics: what sharing them saves)
        self.round_trips = 0

    async def ask(self, key):
        """`key`'s outcome from `call_many`; raises the exception given for it, or the one `call_many` raised."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting.append((key, future))
            submit, self._queued = not self._queued, True
        if submit:
            try:
                db_thread_submit(self._call_waiting)
            except RuntimeError as exc:  # the executor is shut down (the interpreter exits): nobody will call it
                _outcomes_hand(self._taken(), exc)
        return await future

    def _taken(self) -> list[tuple[object, asyncio.Future]]:
        with self._lock:
            waiting, self._waiting, self._queued = self._waiting, [], False
        return [(key, future) for key, future in waiting if self._made_if_cancelled or not future.cancelled()]

    def _call_waiting(self) -> None:
        waiting = self._taken()
        if not waiting:
            return
        with self._lock:  # two database threads may count at once
            self.calls += len(waiting)
            self.round_trips += -(-len(waiting) // self._per_round_trip)
        try:
            outcomes = self._call_many([key for key, _future in waiting])
            if len(outcomes) != len(waiting):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(waiting)} callers")
        except Exception as exc:  # noqa: BLE001 — the database failed: each caller gets the error, as alone
            outcomes = exc
        _outcomes_hand(waiting, outcomes)


def _outcomes_hand(waiting: list[tuple[object, asyncio.Future]], outcomes: list | Exception) -> None:
    """Each waiting caller's outcome (one exception for all: the round trip failed), handed to the loop it waits on,
    so none waits forever."""
    if isinstance(outcomes, Exception):
        outcomes = [outcomes] * len(waiting)
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for (_key, future), outcome in zip(waiting, outcomes, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed (a test's): nobody waits any more
            loop.call_soon_threadsafe(_futures_settle, settled)


def _futures_settle(settled: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in settled:
        if future.done():  # cancelled while its call ran: nobody is left to log its failure
            if isinstance(outcome, Exception):
                log.error("a call whose caller was cancelled failed: %s: %s", type(outcome).__name__, outcome)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


resync_reads = SharedRoundTrips(ea_resyncs, per_round_trip=RESYNCS_PER_ROUND_TRIP)  # ask((tenant_id, account_id))
token_hellos = SharedRoundTrips(  # ask(trading.connection.HelloAsked(…))
    partial(ea_token_hellos, node=NODE), per_round_trip=TRANSACTIONS_PER_ROUND_TRIP
)
disconnects = SharedRoundTrips(  # ask(trading.connection.Disconnected(…))
    ea_disconnects, per_round_trip=TRANSACTIONS_PER_ROUND_TRIP, made_if_cancelled=True
)


async def batchers_flush() -> None:
    for item in list(_batchers.values()):
        await item.flush()


drain_hook_register(batchers_flush)  # a web process that drains writes the rows it buffered (suho/server.py)
drain_hook_register(live_publisher.close)


class DeliveryHub:
    """Routes outbound NATS messages to the connection of this process that holds the account's EA.

    A connection carries `epoch`, its session's live-session epoch (trading.connection.ea_session_claim); the hub
    keeps the newest epoch it has heard of per account, from claims made here and takeover requests from elsewhere,
    so a connection that lost the account before it registered is refused here too.
    """

    SUBJECTS = ("mt5.signal.*.*", "mt5.config.*.*", "mt5.command.*.*")
    KINDS = frozenset(("signal", "config", "command"))  # the subjects' second token

    def __init__(self) -> None:
        self.connections: dict[str, Any] = {}
        self.epochs: dict[str, int] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[str, Future] = {}
        self._subscribed_on: Any = None  # the bus all of them succeeded on
        self._gone: dict[str, float] = {}  # process → loop time until which a takeover to it is not asked
        # payloads delivered at their commit (`deliver_committed`), until their NATS copy arrives; oldest first
        self._delivered_at_commit: dict[bytes, None] = {}
        self._delivered_at_commit_lock = threading.Lock()

    async def start(self) -> None:
        """Subscribe this process once (deliveries and its takeover subject; one that failed, such as before NATS
        was first reached, is tried again); every caller waits until that is done, so a session is claimed only
        once this process can be asked to close it."""
        self.loop = asyncio.get_running_loop()
        bus = get_bus()
        if self._subscribed_on is bus:  # every HELLO asks; waiting on the four done futures cost ~6 % of a storm
            return
        if not self._subscriptions:
            bus.reconnected.append(self._on_reconnected)
            outbox_committed_listen(self.deliver_committed)
        takeover = takeover_subject(NODE)
        for subject in (*self.SUBJECTS, takeover):
            future = self._subscriptions.get(subject)
            if future is None or (future.done() and future.exception() is not None):
                self._subscriptions[subject] = (
                    bus.serve(subject, self._on_takeover) if subject == takeover
                    else bus.subscribe(subject, self._on_message)
                )  # fmt: skip
        await asyncio.gather(*(asyncio.wrap_future(future) for future in self._subscriptions.values()))
        self._subscribed_on = bus

    async def register(self, account_id: str, connection) -> list:
        """Make `connection` the account's socket on this process, unless a newer session of the account is known;
        return what the caller must close with REPLACED: the connection it replaced, or itself."""
        await self.start()
        if connection.epoch < self.epochs.get(account_id, 0):
            return [connection]
        self.epochs[account_id] = connection.epoch
        previous = self.connections.get(account_id)
        self.connections[account_id] = connection
        return [previous] if previous is not None and previous is not connection else []

    def unregister(self, account_id: str, connection) -> None:
        if self.connections.get(account_id) is connection:
            del self.connections[account_id]

    async def take_over(self, *, node: str, account_id: str, epoch: int) -> int:
        """Ask process `node` to close its session of the account older than `epoch`, waiting at most
        TAKEOVER_TIMEOUT_S; returns how many it closed. A process that is gone or slow is only logged: its frames
        are fenced in the database, and the session watch closes the (ended) session within its interval.

        A process with no responder is gone (a deploy replaced it) and is not asked again for NODE_GONE_S. Should it
        only have been between two NATS connections, a takeover skipped meanwhile is a lost request: the fence and the
        session watch act, as for any failed one."""
        loop = asyncio.get_running_loop()
        if self._gone.get(node, 0.0) > loop.time():
            return 0
        payload = json.dumps({"account_id": account_id, "epoch": epoch}).encode()
        try:
            reply = await get_bus().arequest(takeover_subject(node), payload, timeout=TAKEOVER_TIMEOUT_S)
            return int(json.loads(reply or b"{}").get("closed", 0))
        except NoRespondersError:
            self._gone_note(node, loop.time())
            log.info("session takeover: process %s is gone (no responders); not asked again for %.0f s", node,
                     NODE_GONE_S, extra={"account_id": account_id})  # fmt: skip
            return 0
        except Exception as exc:  # noqa: BLE001 — any failure here leaves the fence and the session watch to act
            log.warning("session takeover request to %s failed: %r", node, exc, extra={"account_id": account_id})
            return 0

    def _gone_note(self, node: str, now: float) -> None:
        # nodes are processes, a few per deploy: expired ones go first
        if node not in self._gone and len(self._gone) >= MAX_GONE_NODES:
            self._gone = {name: until for name, until in self._gone.items() if until > now}
            if len(self._gone) >= MAX_GONE_NODES:
                self._gone.pop(next(iter(self._gone)))
        self._gone[node] = now + NODE_GONE_S

    async def _on_takeover(self, data: bytes) -> bytes:
        """Runs on the bus loop: hand the request to the connections' loop and answer how many were closed."""
        request = json.loads(data)
        account_id, epoch = str(request["account_id"]), int(request["epoch"])
        closed = 0
        if self.loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._close_older(account_id, epoch), self.loop)
            # shielded: a slow close still finishes after the timeout (cancelled mid-way, the socket would be out
            # of the map but still open until the session watch found it)
            closed = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), TAKEOVER_TIMEOUT_S)
        return json.dumps({"closed": closed}).encode()

    async def _close_older(self, account_id: str, epoch: int) -> int:
        self.epochs[account_id] = max(self.epochs.get(account_id, 0), epoch)
        connection = self.connections.get(account_id)
        if connection is None or connection.epoch >= epoch:
            return 0
        del self.connections[account_id]
        await connection.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
        return 1

    def _on_reconnected(self) -> None:
        """Runs on the bus loop: what was published while our subscription was down never reached us, so every
        connection resyncs its outbound items from the database (`_resync_all`)."""
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._resync_all(), self.loop)

    async def _resync_all(self) -> None:
        """The session check first, then the resync of the connections it leaves open: a session replaced on another
        process while this one was cut off from NATS (its takeover request lost) is closed with 4012, not sent the
        account's signals again, which its successor is sent too (decision 0017). Should the check fail (the
        database), the resync goes ahead as before and the watch's next pass closes such a session."""
        from trading.session_watch import session_watch  # it imports this module

        try:
            await session_watch().check()
        except Exception:
            log.exception("session check before the resync after a NATS reconnect failed")
        for connection in list(self.connections.values()):
            connection.resync_outbound()

    def deliver_committed(self, subject: str, data: bytes) -> None:
        """Runs in a thread of this process that has just committed an outbox message (`suho.outbox`), before its
        publish: a message for an EA connected here goes to its socket now, not after the round trip through NATS
        (issue 21), and its NATS copy is skipped when it arrives (`_on_message`). The publish still reaches the
        other processes, so an EA connected elsewhere, or whose session moved, is served as before."""
        connection = self._addressee(subject)
        if connection is None or self.loop is None:
            return
        with self._delivered_at_commit_lock:
            if len(self._delivered_at_commit) >= MAX_DELIVERED_AT_COMMIT:
                del self._delivered_at_commit[next(iter(self._delivered_at_commit))]
            self._delivered_at_commit[data] = None
        self.loop.call_soon_threadsafe(connection.deliver_json, data)

    def _on_message(self, subject: str, data: bytes) -> None:
        """Runs on the bus loop: find the connection, hand the payload to its own loop (unless it was handed over at
        its commit here)."""
        if self._delivered_at_commit:
            with self._delivered_at_commit_lock:
                if data in self._delivered_at_commit:
                    del self._delivered_at_commit[data]
                    return
        connection = self._addressee(subject)
        if connection is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(connection.deliver_json, data)

    def _addressee(self, subject: str):
        """This process's connection for an outbound subject (`mt5.<signal|config|command>.<account>.<id>`), if any."""
        parts = subject.split(".")
        if len(parts) != 4 or parts[0] != "mt5" or parts[1] not in self.KINDS or parts[2] == "broadcast":
            return None
        return self.connections.get(parts[2])


hub = DeliveryHub()


class GatewayCollector:
    """The gateway's figures at scrape time: EA connections this process holds, rows written and dropped per
    batcher (their own counters), and EA resyncs with the database reads they took."""

    def describe(self):
        return []

    def collect(self):
        yield GaugeMetricFamily("suho_ea_connections", "EA WebSocket connections held by this process",
                                value=len(hub.connections))  # fmt: skip
        ingested = CounterMetricFamily("suho_ingested_rows", "Rows written, per batcher (volume kinds, outbound)",
                                       labels=["kind"])  # fmt: skip
        dropped = CounterMetricFamily("suho_dropped_rows", "Rows dropped (refused or over capacity), per batcher",
                                      labels=["kind"])  # fmt: skip
        for name, item in sorted(_metered.items()):
            ingested.add_metric([name], item.flushed_rows)
            dropped.add_metric([name], item.dropped_rows)
        yield ingested
        yield dropped
        yield CounterMetricFamily("suho_ea_resyncs", "EA resyncs read from the database",
                                  value=resync_reads.calls)  # fmt: skip
        yield CounterMetricFamily("suho_ea_resync_reads", "Database reads that resynced them (several EAs each when "
                                  "they wait for a database thread)", value=resync_reads.round_trips)  # fmt: skip
        yield CounterMetricFamily("suho_ea_token_hellos", "Token HELLOs checked and claimed",
                                  value=token_hellos.calls)  # fmt: skip
        yield CounterMetricFamily("suho_ea_token_hello_round_trips", "Database round trips that claimed them (several "
                                  "EAs each when they wait for a database thread)",
                                  value=token_hellos.round_trips)  # fmt: skip
        yield CounterMetricFamily("suho_ea_disconnects", "EA disconnects to record", value=disconnects.calls)
        yield CounterMetricFamily("suho_ea_disconnect_round_trips", "Database round trips that recorded them "
                                  "(several EAs each when they wait for a database thread)",
                                  value=disconnects.round_trips)  # fmt: skip


REGISTRY.register(GatewayCollector())
