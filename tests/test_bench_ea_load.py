"""The bench's simulated EAs write their price frames to the socket themselves (bench.ea_load.PriceFrames.wire):
each must be the frame websockets' send() would make of the same payload, which a WebSocket parser reads back as
one final, masked binary frame carrying that payload and its timestamp."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

import binproto
from bench.ea_load import PriceFrames, ws_frame_bytes


def _parsed(wire: bytes) -> tuple[Frame, bool]:
    reader = StreamReader()
    reader.feed_data(wire)
    assert wire[1] & 0x80, "a client frame is masked"
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as done:
        while True:
            next(parser)
    return done.value.value, reader.at_eof() or not reader.buffer


@pytest.mark.parametrize("timestamp_us", [1, 1_764_000_000_123_456, 2**63 - 1])
def test_a_wire_frame_is_the_binary_frame_of_the_patched_payload(timestamp_us):
    frames = PriceFrames(seed=7, as_json=False)
    wire = frames.wire(timestamp_us)
    frame, nothing_left = _parsed(wire)
    assert (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (Opcode.BINARY, True, False, False, False)
    assert nothing_left and len(wire) == ws_frame_bytes(len(frame.data))
    assert frame.data == frames.build(timestamp_us)
    assert binproto.decode(frame.data).timestamp_us == timestamp_us


def test_each_ea_masks_with_its_own_key():
    keys = {PriceFrames(seed=seed, as_json=False).wire(5)[4:8] for seed in range(20)}
    assert len(keys) > 1
