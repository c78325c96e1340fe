"""`nats_setup`: streams as code, idempotent, and a clear failure when JetStream is off."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nats
import pytest
from django.conf import settings
from django.test import override_settings
from nats.js.errors import BadRequestError

from suho.streams import JETSTREAM_DISABLED, NO_SUITABLE_PEERS, _until, streams_ensure


def _stream_subjects() -> dict[str, list[str]]:
    async def read():
        connection = await nats.connect(settings.NATS_URL)
        try:
            jetstream = connection.jetstream()
            return {name: (await jetstream.stream_info(name)).config.subjects
                    for name in ("MT5_ACCOUNT", "MT5_OUTBOUND")}  # fmt: skip
        finally:
            await connection.close()

    return asyncio.run(read())


def test_streams_are_created_then_updated_in_place():
    first = streams_ensure()
    second = streams_ensure()
    assert all(line.endswith(("created", "updated")) for line in first)
    assert second == ["MT5_ACCOUNT: updated", "MT5_OUTBOUND: updated", "SUHO_INGEST: updated"]
    assert _stream_subjects() == {
        "MT5_ACCOUNT": [
            "mt5.account.*.profile",
            "mt5.account.*.balance",
            "mt5.account.*.heartbeat",
            "mt5.account.*.trades.>",
        ],
        "MT5_OUTBOUND": ["mt5.signal.>", "mt5.config.>", "mt5.command.>"],
    }


def test_the_same_message_id_is_stored_once():
    streams_ensure()
    message_id = f"acct:{uuid.uuid4()}:open:1"  # unique per run: the window would remember a fixed one

    async def publish_three_times():
        connection = await nats.connect(settings.NATS_URL)
        try:
            jetstream = connection.jetstream()
            acks = [
                await jetstream.publish("mt5.account.test-acct.trades.open", b"{}", headers={"Nats-Msg-Id": message_id})
                for _ in range(3)
            ]
            return [ack.duplicate for ack in acks], len({ack.seq for ack in acks})
        finally:
            await connection.close()

    duplicates, distinct_sequences = asyncio.run(publish_three_times())
    assert [bool(duplicate) for duplicate in duplicates] == [False, True, True]
    assert distinct_sequences == 1


@pytest.fixture
def nats_without_jetstream(tmp_path: Path):
    server = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if server is None:
        pytest.skip("nats-server binary not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([server, "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_start_up_fails_with_a_clear_message_when_jetstream_is_off(nats_without_jetstream):
    with override_settings(NATS_URL=nats_without_jetstream), pytest.raises(RuntimeError) as refused:
        streams_ensure()
    assert str(refused.value) == JETSTREAM_DISABLED.format(url=nats_without_jetstream)


def _answers(*outcomes):
    """An API call that answers with each outcome in turn: an exception is raised, anything else returned."""
    remaining = list(outcomes)

    async def call():
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call, remaining


def test_setup_tries_again_while_restarted_peers_are_not_yet_back_for_placement():
    """Seen in CI: a cluster whose peers had just restarted answered the stream's create with "no suitable peers for
    placement, peer offline" (a 400, err_code 10005) before it saw them again; the deploy must wait, not fail."""
    peer_offline = BadRequestError(code=400, err_code=NO_SUITABLE_PEERS,
                                   description="no suitable peers for placement, peer offline")  # fmt: skip
    call, remaining = _answers(peer_offline, peer_offline, "MT5_OUTBOUND: created")

    async def setup():
        return await _until(asyncio.get_running_loop().time() + 30, call)

    assert asyncio.run(setup()) == "MT5_OUTBOUND: created"
    assert remaining == []


def test_setup_fails_at_once_on_a_request_jetstream_refuses_for_good():
    bad_config = BadRequestError(code=400, err_code=10074,
                                 description="replicas > 1 not supported in non-clustered mode")  # fmt: skip
    call, remaining = _answers(bad_config, "never reached")

    async def setup():
        return await _until(asyncio.get_running_loop().time() + 30, call)

    with pytest.raises(BadRequestError) as refused:
        asyncio.run(setup())
    assert refused.value.err_code == 10074
    assert remaining == ["never reached"]
