"""`nats_setup`: streams as code, idempotent, and a clear failure when JetStream is off."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import nats
import pytest
from django.conf import settings
from django.test import override_settings
from nats.js.errors import BadRequestError, NotFoundError

from suho.streams import (
    JETSTREAM_DISABLED,
    NO_SUITABLE_PEERS,
    SETUP_DEADLINE_S,
    STREAM_NOT_PLACED,
    _stream_placed,
    _until,
    stream_configs,
    streams_ensure,
)
from tests.servers import nats_server_running


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
def nats_without_jetstream():
    with nats_server_running() as (_process, port):
        yield f"nats://127.0.0.1:{port}"


def test_start_up_fails_with_a_clear_message_when_jetstream_is_off(nats_without_jetstream):
    with override_settings(NATS_URL=nats_without_jetstream), pytest.raises(RuntimeError) as refused:
        streams_ensure()
    assert str(refused.value) == JETSTREAM_DISABLED.format(url=nats_without_jetstream)


def _answers(*outcomes):
    """An API call that answers with each outcome in turn: an exception is raised, anything else returned."""
    remaining = list(outcomes)

    async def call(*_args):
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call, remaining


PEER_OFFLINE = BadRequestError(code=400, err_code=NO_SUITABLE_PEERS,
                               description="no suitable peers for placement, peer offline")  # fmt: skip


async def _until_in(seconds: float, call):
    return await _until(asyncio.get_running_loop().time() + seconds, call)


def test_setup_tries_again_while_restarted_peers_are_not_yet_back_for_placement(monkeypatch):
    """Seen in CI: a cluster whose peers had just restarted answered the stream's create with "no suitable peers for
    placement, peer offline" (a 400, err_code 10005) before it saw them again; the deploy must wait, not fail."""
    monkeypatch.setattr("suho.streams.SETUP_RETRY_S", 0.0)
    call, remaining = _answers(PEER_OFFLINE, PEER_OFFLINE, "MT5_OUTBOUND: created")
    assert asyncio.run(_until_in(30, call)) == "MT5_OUTBOUND: created"
    assert remaining == []


def test_setup_fails_at_once_on_a_request_jetstream_refuses_for_good():
    name_taken = BadRequestError(code=400, err_code=10058,
                                 description="stream name already in use with a different configuration")  # fmt: skip
    call, remaining = _answers(name_taken, "never reached")
    with pytest.raises(BadRequestError) as refused:
        asyncio.run(_until_in(30, call))
    assert refused.value.err_code == 10058
    assert remaining == ["never reached"]


def test_a_stream_that_finds_no_servers_for_its_replicas_fails_the_setup_saying_so(monkeypatch):
    """Too few JetStream servers for NATS_STREAM_REPLICAS answers like peers that are still rejoining: waited for
    until the deadline, then a message that names the stream and the setting (here the deadline has passed)."""
    config = next(config for config in stream_configs() if config.name == "MT5_OUTBOUND")
    jetstream = SimpleNamespace()
    jetstream.stream_info, _ = _answers(NotFoundError(code=404, err_code=10059, description="stream not found"))
    jetstream.add_stream, _ = _answers(PEER_OFFLINE)

    async def setup():
        return await _stream_placed(asyncio.get_running_loop().time(), jetstream, config)

    with pytest.raises(RuntimeError) as refused:
        asyncio.run(setup())
    expected = STREAM_NOT_PLACED.format(stream="MT5_OUTBOUND", replicas=config.num_replicas,
                                        waited_s=SETUP_DEADLINE_S, error=PEER_OFFLINE.description)  # fmt: skip
    assert str(refused.value) == expected
