"""The reconnect storm's EA (bench.storm_ea.StormEA, a raw-socket client written from docs/protocol.md) speaks the
protocol to a real gateway as an EA does: its handshake is accepted, its access-token HELLO is answered OK, it is
resynced (risk parameters and configuration), and its close is the clean 1000 that marks the account offline. A
token the server does not take is a refusal it reports, not a resync."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from accounts.services import ea_authenticate
from bench.storm_ea import StormEA, client_frame, server_frames
from tests.gateway.ea_client import rows

live = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
DEADLINE_S = 10.0


async def storm_ea(server_url, account, token) -> tuple[StormEA, asyncio.Future]:
    finished = asyncio.get_running_loop().create_future()
    ea = StormEA(url=server_url, account_id=account.account_id, access_token=token,
                 on_done=lambda _ea: finished.done() or finished.set_result(None))  # fmt: skip
    await ea.start()
    return ea, finished


@live
async def test_a_storm_ea_is_resynced_and_its_close_marks_the_account_offline(ea_account, server_url):
    _tenant, account, secret = ea_account
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    ea, finished = await storm_ea(server_url, account, tokens.access)
    await asyncio.wait_for(finished, DEADLINE_S)
    assert (ea.resynced_at is not None, ea.refusal, ea.connect_failures) == (True, "", 0)
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
    ea, finished = await storm_ea(server_url, account, tokens.access[:-4] + "AAAA")
    await asyncio.wait_for(finished, DEADLINE_S)
    assert ea.resynced_at is None and ea.refusal.startswith("invalid_token")
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
