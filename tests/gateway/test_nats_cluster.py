"""A three-node NATS cluster with every stream on three replicas loses a server that leads no stream of interest,
then the leader of MT5_ACCOUNT (each SIGKILLed by its PID), under load from an EA's trade events, commands for it
and the data bridge's tick batches: publishing and delivery go on, every publish JetStream acknowledged is in its
stream afterwards, the outbox drains and the bridge (INGEST_MODE=bridge, its own process) applies every batch
(issue 17; docs/decisions/0019)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from datetime import UTC, datetime
from functools import partial

import nats
import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

import binproto
from quotes.ingest import TickRow
from suho.bus import bus_discard, get_bus, nats_servers
from suho.natscluster import NatsCluster, stream_cluster
from suho.outbox import outbox_drain
from suho.streams import stream_replay, streams_ensure
from tests.gateway.ea_client import bridge_process, connect, ingest_consumer_wait, rows, trade_opened
from trading import consumers, gateway
from trading.bridge import ROWS_PER_MESSAGE, ingest_publish, ingest_publish_nothing_after
from trading.gateway import Batcher
from trading.outbound import command_issue

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

STREAMS = ("MT5_ACCOUNT", "MT5_OUTBOUND", "SUHO_INGEST")
TICKS_PER_BATCH = 200
WAIT_S = 45.0  # any one wait: an election, a catch-up, the outbox draining, the bridge applying


@pytest.fixture
def nats_cluster(tmp_path, monkeypatch):
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    fresh_hub = gateway.DeliveryHub()  # the process hub subscribes once, on the bus of the URL it first saw
    monkeypatch.setattr(gateway, "hub", fresh_hub)
    monkeypatch.setattr(consumers, "hub", fresh_hub)
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "3")  # the bridge process runs nats_setup's streams_ensure as well
    try:
        with override_settings(NATS_URL=cluster.url, NATS_STREAM_REPLICAS=3):
            streams_ensure()
            yield cluster
            get_bus().close()  # drained while the cluster is up (a loop stopped with it open warns at exit)
    finally:
        bus_discard(cluster.url)
        cluster.stop()


async def replicas_current(url: str) -> bool:
    """Every stream has a leader and two replicas that are online and caught up."""
    connection = await nats.connect(nats_servers(url), connect_timeout=2)
    try:
        for name in STREAMS:
            cluster = (await connection.jetstream(timeout=2).stream_info(name)).cluster
            if not cluster.leader or len(cluster.replicas or []) != 2:
                return False
            if not all(peer.current and not peer.offline for peer in cluster.replicas):
                return False
        return True
    except Exception:  # noqa: BLE001 — mid-election: not current yet
        return False
    finally:
        await connection.close()


async def wait_for(condition, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:.0f} s"
        await asyncio.sleep(0.1)


class Load:
    """An EA sending trade events one at a time (each waits for its EVENT_ACK), commands issued for it, and tick
    batches handed to JetStream by the gateway's own batcher, all until `stop`."""

    def __init__(self, communicator, tenant, account):
        self.communicator, self.tenant, self.account = communicator, tenant, account
        self.stop = asyncio.Event()
        self.acked_tickets: set[int] = set()
        self.issued_commands: list[str] = []
        self.delivered_commands: list[str] = []
        self.quotes = Batcher("quotes", partial(ingest_publish, "quotes"), ingest_publish_nothing_after,
                              max_rows=ROWS_PER_MESSAGE)  # fmt: skip
        self.ticks_added = 0
        self._acked = asyncio.Condition()
        self.reader_error: BaseException | None = None

    def counts(self) -> tuple[int, int, int]:
        """What needs NATS: commands delivered to the EA, tick batches acked by JetStream; and trades acked."""
        return len(set(self.delivered_commands)), self.quotes.flushed_rows, len(self.acked_tickets)

    async def read(self) -> None:
        """Read as an EA does, acknowledging each command (the gateway closes an EA that leaves more than
        MAX_UNACKED_OUTBOUND of them unacknowledged, 4013: a slow CI run issues that many)."""
        try:
            while True:
                frame = await self.communicator.receive_output(timeout=WAIT_S)
                assert frame["type"] != "websocket.close", f"the gateway closed the EA: {frame}"
                message = binproto.decode(frame["bytes"])
                if isinstance(message, binproto.EventAck):
                    assert message.status == binproto.EventAckStatus.ACCEPTED
                    async with self._acked:
                        self.acked_tickets.add(message.ticket)
                        self._acked.notify_all()
                elif isinstance(message, binproto.Command):
                    self.delivered_commands.append(str(message.command_id))
                    await self.communicator.send_to(bytes_data=binproto.encode(binproto.Ack(
                        acked_type=binproto.MsgType.COMMAND, ref_id=message.command_id, ref_version=0,
                        status=binproto.AckStatus.EXECUTED, reason_code=0, reason="")))  # fmt: skip
        except BaseException as exc:  # a reader that failed fails the waits on it at once, not after WAIT_S
            async with self._acked:
                self.reader_error = exc
                self._acked.notify_all()
            raise

    async def trades(self) -> None:
        ticket = 1000
        while not self.stop.is_set():
            ticket += 1
            await self.communicator.send_to(bytes_data=binproto.encode(trade_opened(ticket, 1)))
            async with self._acked:
                await asyncio.wait_for(
                    self._acked.wait_for(lambda t=ticket: t in self.acked_tickets or self.reader_error), WAIT_S
                )
            self.reader_check()

    def reader_check(self) -> None:
        if self.reader_error is not None:
            raise AssertionError(f"the EA's reader stopped: {self.reader_error!r}") from self.reader_error

    async def commands(self) -> None:
        issue = database_sync_to_async(command_issue)
        while not self.stop.is_set():
            command = await issue(tenant_id=self.tenant.id, account_id=self.account.account_id, kind="close_all",
                                  issued_by="risk")  # fmt: skip
            self.issued_commands.append(str(command.command_id))
            await asyncio.sleep(0.05)

    async def ticks(self) -> None:
        start_us = time.time_ns() // 1000
        while not self.stop.is_set():
            self.quotes.add([TickRow(start_us + self.ticks_added + i, str(self.tenant.id),
                                     str(self.account.account_id), "EURUSD", 1.1, 1.1002, 2.0, 0, True, "unknown",
                                     True) for i in range(TICKS_PER_BATCH)])  # fmt: skip
            self.ticks_added += TICKS_PER_BATCH
            await self.quotes.flush()  # returns once JetStream acked it, or after a failed try (then retried)
            await asyncio.sleep(0.02)

    async def progressed(self, since: tuple[int, int, int]) -> None:
        """Wait until commands were delivered, ticks and trades acked beyond `since` (each of the three)."""

        async def moved() -> bool:
            self.reader_check()
            return all(now > then for now, then in zip(self.counts(), since, strict=True))

        await wait_for(moved, f"progress past {since}")


async def test_losing_a_follower_then_the_stream_leader_loses_nothing_acknowledged(ea_account, nats_cluster, tmp_path):
    tenant, account, secret = ea_account
    url = nats_cluster.url
    bridge_log = tmp_path / "bridge.log"
    bridge = bridge_process(bridge_log, "--durable", "data-bridge-cluster")
    connection = await nats.connect(nats_servers(url))
    try:  # the bridge booted and holds its consumer before anything is killed
        await ingest_consumer_wait(connection.jetstream(), "data-bridge-cluster", process=bridge)
    finally:
        await connection.close()
    communicator, _ = await connect(account, secret)
    load = Load(communicator, tenant, account)
    reader = asyncio.create_task(load.read())
    workers = [asyncio.create_task(work()) for work in (load.trades, load.commands, load.ticks)]
    killed = []
    try:
        await load.progressed((0, 0, 0))
        for role in ("follower", "leader", "leader", "leader"):  # a leader kill is tried again if it was stale
            if role == "leader" and "leader" in killed:
                break
            cluster = await stream_cluster(url, "MT5_ACCOUNT", timeout=WAIT_S)  # asked each time: a restart may move it
            leader = cluster.leader
            # the follower: the one this process's bus is connected to if it qualifies (nats-py picks a server at
            # random), so one of the two kills always cuts the gateway's own connection and its failover is proven
            bus_port = get_bus()._client.connected_url.port
            followers = sorted((node.name for node in nats_cluster.nodes if node.name != leader),
                               key=lambda name: nats_cluster.node(name).client_port != bus_port)  # fmt: skip
            victim = leader if role == "leader" else followers[0]
            before = load.counts()
            killed_at = datetime.now(UTC)
            nats_cluster.node(victim).kill()  # SIGKILL by PID
            await load.progressed(before)  # publishing and delivery go on with two servers of three
            after = await stream_cluster(url, "MT5_ACCOUNT", timeout=WAIT_S)  # an election may be under way
            if role == "follower":
                assert after.leader == leader
                killed.append(role)
            elif after.leader != leader and after.leader_since > killed_at:
                killed.append(role)  # a new leader, elected after the kill: the one killed led the stream
            await asyncio.to_thread(nats_cluster.restart, victim)  # back before the next kill: a quorum needs two
            await wait_for(partial(replicas_current, url), f"{victim}'s replicas catching up")
            assert bridge.poll() is None, bridge_log.read_text()[-3000:]
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), WAIT_S)
        while load.quotes._retry or load.quotes._rows:
            await load.quotes.flush()

        async def outbox_empty() -> bool:  # what Celery beat's drain does every 5 s
            await database_sync_to_async(outbox_drain)()
            [(pending, parked)] = await database_sync_to_async(rows)(
                "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL)"
                " FROM suho_outbox"
            )
            assert parked == 0, "the outbox parked a message during the failover"
            return pending == 0

        await wait_for(outbox_empty, "the outbox drained")

        async def commands_delivered() -> bool:
            load.reader_check()
            return set(load.issued_commands) <= set(load.delivered_commands)

        await wait_for(commands_delivered, "every command delivered to the EA")

        async def ticks_stored() -> bool:
            [(count,)] = await database_sync_to_async(rows)(
                "SELECT count(DISTINCT time) FROM mt5_broker_quotes WHERE account_id = %s", [account.account_id]
            )
            assert bridge.poll() is None, bridge_log.read_text()[-3000:]
            return count == load.ticks_added

        await wait_for(ticks_stored, "the bridge storing every acked tick batch")
    finally:
        load.stop.set()
        for task in (*workers, reader):
            task.cancel()
        await asyncio.gather(*workers, reader, return_exceptions=True)
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=20)
        await communicator.disconnect()
    assert killed == ["follower", "leader"]
    trades = await asyncio.to_thread(stream_replay, account_id=str(account.account_id), kind="trades", limit=100_000)
    stored_tickets = [json.loads(event.data)["ticket"] for event in trades]
    assert sorted(stored_tickets) == sorted(load.acked_tickets)  # every acked trade on the stream, once
    assert await outbound_messages(url) == len(load.issued_commands)  # each command on MT5_OUTBOUND, once


async def outbound_messages(url: str) -> int:
    connection = await nats.connect(nats_servers(url), connect_timeout=2)
    try:
        return (await connection.jetstream(timeout=5).stream_info("MT5_OUTBOUND")).state.messages
    finally:
        await connection.close()


def test_stream_setup_waits_for_a_cluster_that_has_no_quorum_yet(tmp_path):
    """`nats_setup` at deploy time meets a cluster whose peers are still starting: with one server of three up,
    JetStream has no meta leader and answers every stream request with a timeout or a 503. The setup tries again
    until the peers are back, instead of failing the deploy (the first R3 stream operations of a cluster that has
    just formed time out the same way)."""
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    try:
        for node in cluster.nodes[1:]:
            node.kill()
        peers_back = threading.Timer(5.0, lambda: [cluster.restart(node.name) for node in cluster.nodes[1:]])
        peers_back.start()
        try:
            with override_settings(NATS_URL=cluster.nodes[0].url, NATS_STREAM_REPLICAS=3):
                done = streams_ensure()
        finally:
            peers_back.join()
        # "created", or "updated" where a create timed out but happened and the next try found the stream
        assert [line.split(": ")[0] for line in done] == list(STREAMS), done
        assert all(line.endswith((": created", ": updated")) for line in done), done
        asyncio.run(wait_for(partial(replicas_current, cluster.url), "the new streams' replicas catching up"))
    finally:
        cluster.stop()
