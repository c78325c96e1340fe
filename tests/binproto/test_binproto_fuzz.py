"""Fuzzing: random bytes, mutated golden vectors and random JSON text never raise anything but ProtocolError, and
whatever does decode re-encodes to a frame that decodes to the same message. Bounded to a few seconds for CI;
bench/fuzz_binproto.py (atheris) is the long run."""

import json
import struct

from binproto_strategies import ANY_MESSAGE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_binproto_golden import GOLDEN

import binproto as bp

FUZZ = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
SEEDS = [raw for _, raw in GOLDEN.values()]
NAMES = {i: f"S{i}" for i in range(300)}


def decode_or_protocol_error(raw: bytes) -> None:
    try:
        msg = bp.decode(raw)
    except bp.ProtocolError:
        pass
    else:
        again = bp.encode(msg, pad=msg.version == 1 and len(raw) == bp.V1_PACKET_SIZE and len(msg.ticks) < 8)
        assert bp.decode(again) == msg
        assert bp.from_json(bp.to_json(msg)) == msg
    for names in (None, NAMES):
        try:
            bp.decode_price_rows(raw, names)
        except bp.ProtocolError:
            pass
    try:
        bp.decode_v1_price_records(raw)
    except bp.ProtocolError:
        pass


@st.composite
def mutated(draw):
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "count"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and raw:
            raw[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del raw[at:]
        elif op == "count" and len(raw) > 18:  # a list count or string length at a random place
            raw[at : at + 2] = struct.pack("<H", draw(st.integers(0, 0xFFFF)))
    return bytes(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_errors(raw):
    decode_or_protocol_error(raw)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header_raise_only_protocol_errors(body):
    for msg_type in bp.MsgType:
        decode_or_protocol_error(struct.pack("<IHBBQ", bp.MAGIC, 2, msg_type, 0, 1) + body)
    decode_or_protocol_error(struct.pack("<IHBBQ", bp.MAGIC, 1, 1, len(body) // 16, 1) + body)


@FUZZ
@given(mutated())
def test_mutated_golden_vectors_raise_only_protocol_errors(raw):
    decode_or_protocol_error(raw)


@FUZZ
@given(ANY_MESSAGE, st.data())
def test_mutated_json_raises_only_protocol_errors(msg, data):
    doc = bp.to_dict(msg)
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(),
            st.text(max_size=300),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        )
    )
    text = json.dumps(doc)
    try:
        parsed = bp.from_json(text)
    except bp.ProtocolError:
        return
    assert bp.decode(bp.encode(parsed)) == parsed


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_random_json_text_raises_only_protocol_errors(text):
    try:
        bp.from_json(text)
    except bp.ProtocolError:
        pass
