"""suho.server's fast path for a client's common frames (issue 21): `whole_frames` takes from the start of a read
only complete, unfragmented, masked text and binary frames, unmasked exactly as RFC 6455 says, and stops at the first
frame autobahn's parser must see (incomplete, control, fragment, unmasked, 64-bit or non-minimal length, over the
limit, text that is not UTF-8). On a real server, frames that arrive many to a read, split across reads, or with a
ping between them are all answered, in order."""

from __future__ import annotations

import asyncio
import os
import random
import struct

import pytest
from channels.db import database_sync_to_async
from websockets.frames import Frame, Opcode

import binproto
from binproto import EventAckStatus
from suho.server import unmask, whole_frames
from tests.gateway.ea_client import trade_opened, wire_session

SIZES = (0, 1, 5, 125, 126, 144, 4096, 4097, 65535)  # 7-bit, 16-bit lengths; both maskers


def masked(payload: bytes, opcode: Opcode = Opcode.BINARY, *, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=True)


def taken(data: bytes, max_payload: int = 0) -> tuple[list[tuple[bytes, bool]], int]:
    frames = list(whole_frames(data, max_payload))
    return [(payload, is_binary) for payload, is_binary, _end in frames], (frames[-1][2] if frames else 0)


def test_unmask_is_the_xor_with_the_key_repeated_from_its_first_byte():
    payload, key = os.urandom(23), os.urandom(4)
    assert unmask(payload, key) == bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert unmask(b"", key) == b""


def test_every_whole_frame_of_a_read_is_taken_unmasked_in_order():
    random.seed(21)
    payloads = [os.urandom(size) for size in SIZES] + [os.urandom(random.randrange(300)) for _ in range(20)]
    texts = ["tick", "é" * 70, ""]
    data = b"".join(masked(p) for p in payloads) + b"".join(masked(t.encode(), Opcode.TEXT) for t in texts)

    frames, end = taken(data)

    assert frames == [(p, True) for p in payloads] + [(t.encode(), False) for t in texts]
    assert end == len(data)


def test_a_read_that_ends_inside_a_frame_gives_only_the_frames_before_it():
    payloads = [os.urandom(size) for size in (144, 126, 0, 300, 7)]
    encoded = [masked(p) for p in payloads]
    data = b"".join(encoded)
    boundaries = [sum(map(len, encoded[: i + 1])) for i in range(len(encoded))]
    for cut in range(len(data) + 1):
        frames, end = taken(data[:cut])
        whole = sum(1 for boundary in boundaries if boundary <= cut)
        assert [p for p, _ in frames] == payloads[:whole], cut
        assert end == (boundaries[whole - 1] if whole else 0)


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(masked(b"ping", Opcode.PING), id="a control frame"),
        pytest.param(masked(b"part", fin=False), id="the first fragment of a message"),
        pytest.param(masked(b"more", Opcode.CONT), id="a continuation"),
        pytest.param(Frame(Opcode.BINARY, b"bare").serialize(mask=False), id="an unmasked frame"),
        pytest.param(masked(os.urandom(65536)), id="a 64-bit length"),
        pytest.param(b"\x82\xfe" + struct.pack("!H", 100) + b"\x00" * 104, id="a 16-bit length under 126"),
        pytest.param(masked(b"\xff\xfe", Opcode.TEXT), id="text that is not UTF-8"),
        pytest.param(bytes([0xC2]) + masked(b"x")[1:], id="an RSV bit (no extension is negotiated)"),
    ],
)
def test_the_first_frame_autobahn_must_see_stops_the_fast_path_and_everything_after_it_is_left(odd):
    before, after = os.urandom(144), os.urandom(144)
    data = masked(before) + odd + masked(after)

    frames, end = taken(data)

    assert frames == [(before, True)]
    assert end == len(masked(before))


def test_a_frame_over_the_limit_is_left_to_autobahn_which_refuses_it():
    small, big = os.urandom(100), os.urandom(1000)
    frames, end = taken(masked(small) + masked(big), max_payload=999)
    assert frames == [(small, True)] and end == len(masked(small))
    assert taken(masked(big), max_payload=1000)[0] == [(big, True)]


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
async def test_trade_events_many_to_a_read_split_across_reads_and_around_a_ping_are_all_acknowledged_in_order(
    server_url, ea_accounts
):
    [(_tenant, account, secret)] = await database_sync_to_async(ea_accounts)(1, 1)
    ws = await wire_session(server_url, account, secret)
    try:
        events = [binproto.encode(trade_opened(5_000 + seq, seq)) for seq in range(1, 31)]
        frames = [masked(event) for event in events]
        transport = ws.transport  # written raw: the frames must reach the server as one read, or split mid-frame
        transport.write(b"".join(frames[:10]))  # ten to one read
        await asyncio.sleep(0.2)
        split = b"".join(frames[10:13])
        for at in range(0, len(split), 7):  # three frames in pieces of 7 bytes: each read ends inside a frame
            transport.write(split[at : at + 7])
            await asyncio.sleep(0.005)
        transport.write(frames[13] + masked(b"are you there", Opcode.PING) + b"".join(frames[14:20]))
        await asyncio.sleep(0.2)
        transport.write(b"".join(frames[20:]))

        acks = []
        async with asyncio.timeout(30):
            while len(acks) < len(events):
                message = binproto.decode(await ws.recv())
                if isinstance(message, binproto.EventAck):
                    acks.append(message)
    finally:
        await ws.close()

    assert [ack.event_seq for ack in acks] == list(range(1, 31))
    assert {ack.status for ack in acks} == {EventAckStatus.ACCEPTED}
