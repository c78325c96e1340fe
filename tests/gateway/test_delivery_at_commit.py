"""A message committed by this process for an EA connected to it is handed to the socket at its commit, before its
publish (issue 21: delivery waits on nothing slower than the commit), and its NATS copy is then skipped, once. A
message for an EA connected elsewhere, and every other outbox subject, is left to NATS as before."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

import binproto
from suho.bus import bus_discard
from suho.models import OutboxMessage
from suho.outbox import _drainer, outbox_drain
from tests.gateway.ea_client import connect, receive_until
from trading import gateway
from trading.gateway import DeliveryHub, hub
from trading.outbound import command_issue

NATS_NOWHERE = "nats://127.0.0.1:1"  # nothing listens there


class Socket:
    """Stands in for a connection in the hub's map: what the hub hands it, in order."""

    def __init__(self) -> None:
        self.delivered: list[bytes] = []

    def deliver_json(self, data: bytes) -> None:
        self.delivered.append(data)


async def routed() -> None:
    """The hub hands payloads over with call_soon_threadsafe: let those callbacks run."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
async def test_a_command_committed_here_reaches_the_ea_connected_here_while_nats_is_down_and_its_copy_is_skipped(
    ea_account,
):
    tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    await receive_until(communicator, binproto.ConfigUpdate)  # the resync is over
    with override_settings(NATS_URL=NATS_NOWHERE):  # the committing thread cannot publish
        command = await database_sync_to_async(command_issue)(
            tenant_id=tenant.id, account_id=account.account_id, kind="reconnect", issued_by="t"
        )
        delivered = await receive_until(communicator, binproto.Command)
        await asyncio.wrap_future(_drainer.submit(lambda: None))  # the background retry has run, and failed
    bus_discard(NATS_NOWHERE)
    assert delivered.command_id == command.command_id
    rows = OutboxMessage.objects.using("operator")
    row = await database_sync_to_async(rows.get)(msg_id=f"command:{command.command_id}")
    assert row.published_at is None  # not in JetStream yet: the EA had it from the commit
    await communicator.send_to(
        bytes_data=binproto.encode(
            binproto.Ack(
                acked_type=binproto.MsgType.COMMAND,
                ref_id=command.command_id,
                ref_version=0,
                status=binproto.AckStatus.RECEIVED,
                reason_code=0,
                reason="",
            )
        )
    )  # fmt: skip  (acknowledged: a second copy would now be sent again, not dropped as still unacknowledged)

    assert await database_sync_to_async(outbox_drain)() >= 1  # NATS is back: published, and its copy comes back here
    deadline = time.monotonic() + 5
    while hub._delivered_at_commit:
        assert time.monotonic() < deadline, "the NATS copy never reached the hub"
        await asyncio.sleep(0.02)
    assert await communicator.receive_nothing(timeout=0.3)  # the copy was skipped, not sent a second time
    await communicator.disconnect()


async def test_the_nats_copy_of_a_message_delivered_at_its_commit_is_skipped_once():
    router, socket = DeliveryHub(), Socket()
    router.loop = asyncio.get_running_loop()
    router.connections["acc-1"] = socket

    router.deliver_committed("mt5.signal.acc-1.s1", b"first")
    router._on_message("mt5.signal.acc-1.s1", b"first")  # its NATS copy
    router._on_message("mt5.signal.acc-1.s1", b"first")  # published once more by a drain: JetStream drops it, NATS not
    router._on_message("mt5.signal.acc-1.s2", b"second")  # committed by another process
    await routed()

    assert socket.delivered == [b"first", b"first", b"second"]
    assert not router._delivered_at_commit


async def test_only_outbound_messages_for_an_ea_connected_here_are_delivered_at_commit():
    router, socket = DeliveryHub(), Socket()
    router.loop = asyncio.get_running_loop()
    router.connections["acc-1"] = socket

    for subject in (
        "mt5.account.acc-1.profile",  # an outbox subject, but not for the EA
        "mt5.account.acc-1.trades.opened",
        "mt5.signal.broadcast.s1",
        "mt5.signal.acc-2.s1",  # its EA is not connected here
        "mt5.signal.acc-1",
    ):
        router.deliver_committed(subject, subject.encode())
    router.deliver_committed("mt5.config.acc-1.risk", b"risk")
    router.deliver_committed("mt5.command.acc-1.reconnect", b"command")
    await routed()

    assert socket.delivered == [b"risk", b"command"]
    assert list(router._delivered_at_commit) == [b"risk", b"command"]


async def test_messages_whose_copy_never_comes_are_forgotten_oldest_first_past_the_bound(monkeypatch):
    monkeypatch.setattr(gateway, "MAX_DELIVERED_AT_COMMIT", 3)
    router, socket = DeliveryHub(), Socket()
    router.loop = asyncio.get_running_loop()
    router.connections["acc-1"] = socket

    for n in range(5):  # NATS is down: no copy comes back
        router.deliver_committed(f"mt5.signal.acc-1.s{n}", b"%d" % n)
    assert list(router._delivered_at_commit) == [b"2", b"3", b"4"]
    router._on_message("mt5.signal.acc-1.s0", b"0")  # the drain publishes the forgotten one: delivered again
    router._on_message("mt5.signal.acc-1.s4", b"4")  # and a remembered one: skipped
    await routed()

    assert socket.delivered == [b"0", b"1", b"2", b"3", b"4", b"0"]
