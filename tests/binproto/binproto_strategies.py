"""Hypothesis strategies for every binproto message, derived from the same annotations the codec compiles."""

from enum import IntEnum
from typing import Annotated, get_origin

from hypothesis import strategies as st

import binproto as bp
from binproto.codec import LAYOUT_BY_CLASS, item_layout
from binproto.messages import Fixed, Pairs, Text

INT_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF, "Q": 2**64 - 1}
# any Unicode scalar except NUL and surrogates (which UTF-8 cannot carry)
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def text(kind: Text) -> st.SearchStrategy[str]:
    short = st.text(CHARS, min_size=kind.min_bytes, max_size=min(kind.max_bytes // 4, 40))
    ascii_full = st.text(
        st.characters(min_codepoint=1, max_codepoint=127),
        min_size=max(kind.min_bytes, kind.max_bytes - 3),
        max_size=kind.max_bytes,
    )
    return st.one_of(short, ascii_full) if kind.max_bytes <= 255 else short


def field(spec) -> st.SearchStrategy:
    kind, pytype = spec.kind, spec.pytype
    if isinstance(kind, Fixed):
        if kind.fmt == "16s":
            ids = st.uuids().filter(lambda u: u.int != 0)
            return st.one_of(st.none(), ids) if kind.name == "uuid/0" else st.uuids()
        if pytype is bool:
            return st.booleans()
        if isinstance(pytype, type) and issubclass(pytype, IntEnum):
            lo = -1 if kind.lo is None else kind.lo
            hi = 1 << 16 if kind.hi is None else kind.hi
            return st.sampled_from([m for m in pytype if lo <= m <= hi])
        if kind.fmt == "d":
            return st.floats(kind.lo, kind.hi, allow_nan=False, allow_infinity=False)
        lo = 0 if kind.lo is None else int(kind.lo)
        hi = INT_MAX[kind.fmt] if kind.hi is None else int(kind.hi)
        return st.integers(lo, hi)
    if isinstance(kind, Text):
        return text(kind)
    if isinstance(kind, Pairs):
        keys = text(Text("str8", "B", 64, 1))
        return st.dictionaries(keys, text(Text("str8", "B", 255)), max_size=kind.max_items).map(
            lambda d: tuple(d.items())
        )
    return st.lists(item(kind.item), max_size=min(kind.max_items, 70)).map(tuple)


def item(item_type) -> st.SearchStrategy:
    layout = item_layout(item_type)
    if get_origin(item_type) is Annotated:
        return field(layout.fields[0])
    fixed_defaults = {
        name: st.just(default)
        for name, default in zip(layout.cls._fields[len(layout.fields) :], layout.defaults, strict=True)
    }
    return st.builds(layout.cls, *[field(spec) for spec in layout.fields], **fixed_defaults)


def message(cls) -> st.SearchStrategy:
    layout = LAYOUT_BY_CLASS[cls]
    return st.builds(
        cls,
        *[field(spec) for spec in layout.fields],
        version=st.just(bp.V2),
        timestamp_us=st.integers(0, 2**64 - 1),
    )


V1_TICK = st.builds(
    bp.PriceTick,
    symbol=st.integers(0, 0xFFFF_FFFF),
    bid=st.integers(0, 0xFFFF_FFFF).map(lambda k: k / 100000),
    ask=st.integers(0, 0xFFFF_FFFF).map(lambda k: k / 100000),
    spread_points=st.integers(0, 0xFFFF),
    server_id=st.integers(0, 0xFFFF),
    quote_quality=st.just(bp.QuoteQuality.UNKNOWN),  # what v1 cannot carry stays at its default
    tradeable=st.just(True),
    market_session=st.just(bp.MarketSession.UNKNOWN),
)


def v1_price_stream(max_ticks: int = 8) -> st.SearchStrategy:
    return st.builds(
        bp.PriceStream,
        st.lists(V1_TICK, max_size=max_ticks).map(tuple),
        version=st.just(bp.V1),
        timestamp_us=st.integers(0, 2**64 - 1),
    )


ANY_MESSAGE = st.one_of(v1_price_stream(), *[message(cls) for cls in bp.MESSAGE_CLASSES])
