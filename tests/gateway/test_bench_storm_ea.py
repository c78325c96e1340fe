"""The reconnect storm's EA (bench.storm_ea.StormEA, a raw-socket client written from docs/protocol.md) speaks the
protocol to a real gateway as an EA does: its handshake is accepted, its access-token HELLO is answered OK, it is
resynced (risk parameters and configuration), and its close is the clean 1000 that marks the account offline. A
token the server does not take is a refusal it reports, not a resync. An attempt that fails before the resync is
retried, and none starts after close(); a frame it cannot read ends it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

import pytest
from channels.db import database_sync_to_async

import binproto
from accounts.services import ea_authenticate
from bench.storm_ea import WS_GUID, StormEA, client_frame, handshake_accepted, server_frames
from tests.gateway.ea_client import rows
from tests.servers import free_port

live = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
DEADLINE_S = 10.0


async def storm_ea(server_url, account, token) -> StormEA:
    ea = StormEA(url=server_url, account_id=account.account_id, access_token=token)
    ea.start()
    return ea


@live
async def test_a_storm_ea_is_resynced_and_its_close_marks_the_account_offline(ea_account, server_url):
    _tenant, account, secret = ea_account
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    ea = await storm_ea(server_url, account, tokens.access)
    await asyncio.wait_for(ea.finished, DEADLINE_S)
    assert (ea.resynced_at is not None, ea.refusal, ea.error, ea.retries) == (True, "", "", 0)
    state = "SELECT connection_status FROM mt5_user_accounts WHERE account_id = %s"
    assert await database_sync_to_async(rows)(state, [account.account_id]) == [("online",)]

    await ea.close()
    audits = "SELECT event_description FROM mt5_audit_log WHERE account_id = %s AND event_type = 'ea_disconnected'"
    for _ in range(100):
        if await database_sync_to_async(rows)(audits, [account.account_id]):
            break
        await asyncio.sleep(0.05)
    assert await database_sync_to_async(rows)(audits, [account.account_id]) == [("EA disconnected (code 1000)",)]
    assert await database_sync_to_async(rows)(state, [account.account_id]) == [("offline",)]


@live
async def test_a_storm_ea_with_a_forged_token_reports_the_refusal(ea_account, server_url):
    _tenant, account, secret = ea_account
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    ea = await storm_ea(server_url, account, tokens.access[:-4] + "AAAA")
    await asyncio.wait_for(ea.finished, DEADLINE_S)
    assert ea.resynced_at is None and ea.refusal.startswith("invalid_token") and ea.retries == 0
    await ea.close()


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536])
def test_its_frames_are_final_masked_frames_that_a_parser_reads_back(size):
    from websockets.frames import Frame
    from websockets.streams import StreamReader

    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    reader = StreamReader()
    reader.feed_data(client_frame(0x2, payload))
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as done:
        while True:
            next(parser)
    frame = done.value.value
    assert (frame.fin, frame.opcode.value, frame.data) == (True, 0x2, payload)


def test_server_frames_are_taken_whole_and_a_partial_one_waits():
    unmasked = bytearray(b"\x82\x03abc" + b"\x82\x7e\x01\x00" + b"x" * 256 + b"\x88\x02\x03")
    assert server_frames(unmasked) == [(0x2, b"abc"), (0x2, b"x" * 256)]
    assert unmasked == bytearray(b"\x88\x02\x03")
    unmasked += b"\xe8"
    assert server_frames(unmasked) == [(0x8, b"\x03\xe8")] and not unmasked


def test_server_frames_with_a_64_bit_length_or_a_header_cut_short():
    big = bytearray(b"\x82\x7f" + (70_000).to_bytes(8, "big") + b"y" * 70_000)
    assert server_frames(big) == [(0x2, b"y" * 70_000)] and not big
    cut = bytearray(b"\x82\x7e\x01")  # 126: the 16-bit length has not all arrived
    assert server_frames(cut) == [] and cut == bytearray(b"\x82\x7e\x01")


@pytest.mark.parametrize("frame", [b"\x02\x03abc", b"\x82\x83\x00\x00\x00\x00abc"], ids=["fragmented", "masked"])
def test_a_fragmented_or_masked_server_frame_is_refused(frame):
    with pytest.raises(binproto.ProtocolError):
        server_frames(bytearray(frame))


def test_the_handshake_is_accepted_only_with_the_answer_to_our_key():
    key = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example: its answer is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
    ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert handshake_accepted(ok, key)
    assert not handshake_accepted(ok.replace(b"s3pP", b"AAAA"), key)
    assert not handshake_accepted(ok.replace(b"101 Switching Protocols", b"403 Forbidden"), key)
    assert not handshake_accepted(ok, b"another key=")


async def test_a_failed_attempt_is_retried_and_none_starts_after_close():
    ea = StormEA(url=f"ws://127.0.0.1:{free_port()}/ws/ea/", account_id=uuid.uuid4(), access_token="t")
    ea.start()  # nothing listens there: refused, retried after 0.5-1 s, then 1-2 s
    for _ in range(50):
        if ea.retries >= 2:
            break
        await asyncio.sleep(0.1)
    assert ea.retries >= 2 and not ea.finished.done()
    await ea.close()
    retries = ea.retries
    await asyncio.sleep(2.5)  # longer than the next backoff
    assert ea.retries == retries


async def _answering_server(answer) -> tuple[asyncio.Server, int]:
    """A server that reads the handshake and calls `answer(key, writer)`."""

    async def serve(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":")[1].strip() for line in request.split(b"\r\n") if line.startswith(b"Sec-WebSocket-Key")
        )
        await answer(key, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _switching(key: bytes) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest())
    return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"


async def test_a_frame_it_cannot_read_ends_it_without_a_retry():
    async def answer(key, writer):
        writer.write(_switching(key) + b"\x82\x83\x00\x00\x00\x00abc")  # a masked server frame
        await writer.drain()

    server, port = await _answering_server(answer)
    async with server:
        ea = StormEA(url=f"ws://127.0.0.1:{port}/ws/ea/", account_id=uuid.uuid4(), access_token="t")
        ea.start()
        await asyncio.wait_for(ea.finished, DEADLINE_S)
        assert "masked" in ea.error and ea.resynced_at is None
        await asyncio.sleep(1.2)  # past the first backoff
        assert ea.retries == 0
        await ea.close()


async def test_an_attempt_not_resynced_in_time_is_dropped_and_retried():
    async def answer(key, writer):
        writer.write(_switching(key))  # then silence: no AUTH_RESULT
        await writer.drain()
        await asyncio.sleep(30)

    server, port = await _answering_server(answer)
    async with server:
        ea = StormEA(url=f"ws://127.0.0.1:{port}/ws/ea/", account_id=uuid.uuid4(), access_token="t", timeout_s=0.3)
        ea.start()
        for _ in range(30):
            if ea.retries:
                break
            await asyncio.sleep(0.1)
        assert ea.retries >= 1 and not ea.finished.done()
        await ea.close()
