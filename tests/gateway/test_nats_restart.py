"""NATS restarted while an EA streams: trade events are kept and acked, and what was sent during the outage is
delivered once NATS is back (outbox), without restarting the gateway."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

import binproto
from suho.bus import bus_discard
from suho.outbox import outbox_drain
from suho.streams import stream_replay, streams_ensure
from tests.gateway.ea_client import connect, receive_until, trade_opened
from trading import consumers, gateway
from trading.outbound import command_issue

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


@database_sync_to_async
def outbox_state() -> list:
    from suho.models import OutboxMessage

    return list(
        OutboxMessage.objects.using("operator").values_list("subject", "published_at", "attempts", "last_error")
    )


class NatsServer:
    """A private JetStream server on a free port that the test can stop and start again with the same storage."""

    def __init__(self, store: Path):
        self.binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.store = store
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until JetStream answers; a server that stalls while recovering its store is restarted
        once (seen here under heavy load)."""
        for _attempt in range(2):
            self._spawn()
            if self._jetstream_ready():
                return
            self.process.kill()
            self.process.wait(timeout=10)
        raise AssertionError(f"nats-server did not become ready: {self.log()}")

    def _jetstream_ready(self) -> bool:
        async def probe() -> bool:
            try:
                connection = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=0)
            except Exception:  # noqa: BLE001
                return False
            try:
                await connection.jetstream(timeout=10).account_info()
                return True
            except Exception:  # noqa: BLE001
                return False
            finally:
                await connection.close()

        return asyncio.run(probe())

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
             "-l", str(self.store.parent / "nats.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"nats-server did not start: {self.log()}")

    def log(self) -> str:
        path = self.store.parent / "nats.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def private_nats(tmp_path, monkeypatch):
    server = NatsServer(tmp_path / "jetstream")
    if server.binary is None:
        pytest.skip("nats-server binary not installed")
    server.start()
    fresh_hub = gateway.DeliveryHub()  # the process hub subscribes once, on the bus of the URL it first saw
    monkeypatch.setattr(gateway, "hub", fresh_hub)
    monkeypatch.setattr(consumers, "hub", fresh_hub)
    with override_settings(NATS_URL=server.url):
        streams_ensure()
        yield server
    server.stop()
    bus_discard(server.url)


async def test_an_outage_loses_no_trade_event_and_outbound_items_arrive_after_it(ea_account, private_nats):
    tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    await asyncio.to_thread(private_nats.stop)
    await communicator.send_to(bytes_data=binproto.encode(trade_opened(31337, 1)))
    ack = await receive_until(communicator, binproto.EventAck, timeout=10)
    assert ack.status == binproto.EventAckStatus.ACCEPTED  # committed to PostgreSQL: NATS is not needed for that
    command = await database_sync_to_async(command_issue)(
        tenant_id=tenant.id, account_id=account.account_id, kind="close_all", issued_by="risk"
    )
    await asyncio.to_thread(private_nats.start)
    deadline = time.monotonic() + 60  # the client's reconnect backoff plus a 5 s publish timeout per try
    delivered = None
    # Until the command reached the EA (at its commit, decision 0037, or from the outbox) and the outbox holds
    # nothing unpublished: the trade event's row is published by a drain once the bus has reconnected, which may be
    # after the command arrived.
    while delivered is None or any(published_at is None for _s, published_at, _a, _e in await outbox_state()):
        assert time.monotonic() < deadline, f"not all delivered after the outage; outbox: {await outbox_state()}"
        await database_sync_to_async(outbox_drain)()  # what Celery beat does every 5 s
        if delivered is not None:
            await asyncio.sleep(0.2)
        elif not await communicator.receive_nothing(timeout=0.2):
            message = binproto.decode((await communicator.receive_output())["bytes"])
            if isinstance(message, binproto.Command):
                delivered = message
    assert delivered.command_id == command.command_id
    await communicator.disconnect()
    trades = await asyncio.to_thread(stream_replay, account_id=str(account.account_id), kind="trades")
    assert [event.subject.rsplit(".", 1)[1] for event in trades] == ["open"]
