"""Bytes ↔ messages: decode, encode, the ingest fast path for price streams, and the timestamp plausibility rule.

Layouts are compiled once from the annotations in messages.py: each body is one precompiled struct for its
fixed-size fields followed by its strings and lists. Lists of fixed-size records are checked column by column
(min/max/sum over a column run in C), so a 64-symbol price packet costs a few C calls, not 64 × 7 Python checks.
Every way a buffer can be wrong raises ProtocolError with a message built from the constants in errors.py.
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import IntEnum
from functools import lru_cache
from itertools import repeat
from typing import Annotated, Any, Final, NamedTuple, get_args, get_origin, get_type_hints
from uuid import UUID

from binproto import errors as E
from binproto.constants import (
    DEFAULT_V1_SYMBOLS,
    HEADER_FORMAT,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_SIZE,
    MAX_FUTURE_SKEW_US,
    MAX_PAST_SKEW_US,
    V1,
    V1_MAX_PRICE,
    V1_MAX_RECORDS,
    V1_PACKET_SIZE,
    V1_PRICE_SCALE,
    V1_RECORD_SIZE,
    V1_SLOTS,
    V2,
    ErrorCode,
    MarketSession,
    MsgType,
    QuoteQuality,
)
from binproto.errors import ProtocolError
from binproto.messages import CLASS_BY_TYPE, Fixed, Items, Message, Pairs, PriceStream, PriceTick, Text

HEADER: Final = struct.Struct(HEADER_FORMAT)
V1_ROW: Final = struct.Struct("<IIIHH")  # the same 16 bytes, flags split in C into spread (low) and server id (high)
V1_RECORD_FIELDS: Final = ("symbol_id", "bid", "ask", "spread_points", "server_id")  # V1_ROW's values
V1_ZERO_PADDING: Final = bytes(V1_PACKET_SIZE)
ZERO_UUID: Final = bytes(16)
BOOLS: Final = {0: False, 1: True}
U64_MAX: Final = 2**64 - 1
INF: Final = float("inf")


class Header(NamedTuple):
    version: int
    msg_type: MsgType
    data_count: int
    timestamp_us: int


# --- layouts ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    name: str
    pytype: Any
    kind: Fixed | Text | Items | Pairs


@dataclass(frozen=True, slots=True)
class Layout:
    """A message or record body: ``fixed`` packs fields[:n_fixed]; the rest are strings and lists, in order."""

    cls: type
    fields: tuple[Field, ...]
    fixed: struct.Struct
    n_fixed: int
    checks: tuple[tuple[int, float, float, str], ...]  # (position, lo, hi, field name): numbers with bounds
    lookups: tuple[tuple[int, dict, str, str], ...]  # (position, raw → value, field name, type name): enums, bools
    uuids: tuple[tuple[int, bool, str], ...]  # (position, zero means None, field name)
    defaults: tuple[Any, ...]  # trailing record fields that are not on the wire (PriceTick.server_id)
    name: str


def wire_fields(cls: type) -> tuple[Field, ...]:
    """The annotated (on-the-wire) fields of a message, record, or a one-field Annotated scalar alias."""
    if get_origin(cls) is Annotated:
        pytype, kind = get_args(cls)[:2]
        return (Field("value", pytype, kind),)
    hints = get_type_hints(cls, include_extras=True)
    names = [f.name for f in fields(cls)] if is_dataclass(cls) else list(cls._fields)
    out = []
    for name in names:
        if get_origin(hints[name]) is Annotated:
            pytype, kind = get_args(hints[name])[:2]
            out.append(Field(name, pytype, kind))
    return tuple(out)


def _lookup_table(pytype: Any, kind: Fixed) -> dict | None:
    if pytype is bool:
        return BOOLS
    if isinstance(pytype, type) and issubclass(pytype, IntEnum):
        lo = kind.lo if kind.lo is not None else -1
        hi = kind.hi if kind.hi is not None else 1 << 16
        return {int(member): member for member in pytype if lo <= member <= hi}
    return None


def compile_layout(cls: Any) -> Layout:
    specs = wire_fields(cls)
    n_fixed = 0
    for spec in specs:
        if isinstance(spec.kind, Fixed):
            if n_fixed != specs.index(spec):
                raise TypeError(f"{cls}: fixed-size field {spec.name} follows a variable-size one")
            n_fixed += 1
    checks, lookups, uuids = [], [], []
    for i, spec in enumerate(specs[:n_fixed]):
        table = _lookup_table(spec.pytype, spec.kind)
        if table is not None:
            lookups.append((i, table, spec.name, spec.pytype.__name__))
        elif spec.kind.fmt == "16s":
            uuids.append((i, spec.kind.name == "uuid/0", spec.name))
        elif spec.kind.lo is not None:
            checks.append((i, spec.kind.lo, spec.kind.hi, spec.name))
    fmt = "<" + "".join(spec.kind.fmt for spec in specs[:n_fixed])
    defaults = ()
    if hasattr(cls, "_field_defaults"):
        defaults = tuple(cls._field_defaults[name] for name in cls._fields[len(specs) :])
    name = getattr(cls, "__name__", "value")
    return Layout(cls, specs, struct.Struct(fmt), n_fixed, tuple(checks), tuple(lookups), tuple(uuids), defaults, name)


LAYOUT_BY_TYPE: Final = {msg_type: compile_layout(cls) for msg_type, cls in CLASS_BY_TYPE.items()}
LAYOUT_BY_CLASS: Final = {layout.cls: layout for layout in LAYOUT_BY_TYPE.values()}
_ITEM_LAYOUTS: dict[Any, Layout] = {}


def item_layout(item: Any) -> Layout:
    layout = _ITEM_LAYOUTS.get(item)
    if layout is None:
        layout = _ITEM_LAYOUTS[item] = compile_layout(item)
    return layout


def _type_name(spec: Field) -> str:
    kind = spec.kind
    if isinstance(kind, Fixed):
        if spec.pytype is bool:
            return f"{kind.name} bool"
        if isinstance(spec.pytype, type) and issubclass(spec.pytype, IntEnum):
            return f"{kind.name} {spec.pytype.__name__}"
        if kind.fmt == "d" or kind.lo is None:
            return kind.name
        return f"{kind.name} {int(kind.lo)}..{int(kind.hi)}"
    if isinstance(kind, Text):
        return f"{kind.name} {kind.min_bytes}..{kind.max_bytes}"
    if isinstance(kind, Pairs):
        return f"{kind.name} ≤{kind.max_items}"
    item = kind.item
    item_name = _type_name(wire_fields(item)[0]) if get_origin(item) is Annotated else item.__name__
    return f"{kind.name} ≤{kind.max_items} × {item_name}"


def describe(cls: Any) -> list[tuple[str, str, str]]:
    """(offset, field, wire type) rows as docs/protocol.md tables show them. Message offsets count from the frame
    start; record offsets from the record start; fields after the fixed block have offset "…"."""
    layout = LAYOUT_BY_CLASS.get(cls) or item_layout(cls)
    offset = HEADER_SIZE if cls in LAYOUT_BY_CLASS else 0
    rows = []
    for i, spec in enumerate(layout.fields):
        if i < layout.n_fixed:
            rows.append((str(offset), spec.name, _type_name(spec)))
            offset += struct.calcsize("<" + spec.kind.fmt)
        else:
            rows.append(("…", spec.name, _type_name(spec)))
    return rows


# --- decode -----------------------------------------------------------------------------------------------------
def _as_bytes(buf: Any) -> bytes:
    if type(buf) is bytes:
        return buf
    if isinstance(buf, (bytes, bytearray)):
        return bytes(buf)
    if isinstance(buf, memoryview):
        return buf.tobytes()
    raise TypeError(E.ERR_NOT_BYTES.format(kind=type(buf).__name__))


def _read_header(buf: bytes) -> tuple[int, int, int, int]:
    size = len(buf)
    if size < HEADER_SIZE:
        raise ProtocolError(E.ERR_SHORT_HEADER.format(size=size))
    if size > MAX_FRAME_SIZE:
        raise ProtocolError(E.ERR_TOO_LARGE.format(size=size, limit=MAX_FRAME_SIZE), ErrorCode.TOO_LARGE)
    magic, version, msg_type, count, timestamp_us = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ProtocolError(E.ERR_BAD_MAGIC.format(magic=magic))
    if version == V1:
        if msg_type != MsgType.PRICE_STREAM:
            raise ProtocolError(E.ERR_BAD_TYPE.format(msg_type=msg_type, version=version), ErrorCode.UNKNOWN_TYPE)
        if size != HEADER_SIZE + V1_RECORD_SIZE * count and not (size == V1_PACKET_SIZE and count <= V1_SLOTS):
            raise ProtocolError(
                E.ERR_V1_LENGTH.format(
                    count=count, exact=HEADER_SIZE + V1_RECORD_SIZE * count, padded=V1_PACKET_SIZE, size=size
                )
            )
        end = HEADER_SIZE + V1_RECORD_SIZE * count
        if end < size and buf[end:] != V1_ZERO_PADDING[end:]:
            raise ProtocolError(E.ERR_V1_PADDING.format(count=count))
        return version, msg_type, count, timestamp_us
    if version != V2:
        raise ProtocolError(E.ERR_BAD_VERSION.format(version=version), ErrorCode.UNSUPPORTED_VERSION)
    if msg_type not in LAYOUT_BY_TYPE:
        raise ProtocolError(E.ERR_BAD_TYPE.format(msg_type=msg_type, version=version), ErrorCode.UNKNOWN_TYPE)
    if count:
        raise ProtocolError(E.ERR_DATA_COUNT.format(version=version, count=count))
    return version, msg_type, count, timestamp_us


def decode_header(buf: bytes | bytearray | memoryview) -> Header:
    """The checked header, to dispatch on before decoding (v1 frame length and padding are checked too)."""
    version, msg_type, count, timestamp_us = _read_header(_as_bytes(buf))
    return Header(version, MsgType(msg_type), count, timestamp_us)


def decode(buf: bytes | bytearray | memoryview) -> Message:
    """One frame → its message. Raises ProtocolError for anything that is not exactly one valid message."""
    buf = _as_bytes(buf)
    version, msg_type, count, timestamp_us = _read_header(buf)
    if version == V1:
        return PriceStream(_v1_ticks(buf, count), V1, timestamp_us)
    layout = LAYOUT_BY_TYPE[msg_type]
    values, end = _decode_body(layout, buf, HEADER_SIZE, layout.name)
    if end != len(buf):
        raise ProtocolError(E.ERR_TRAILING.format(size=len(buf), extra=len(buf) - end, name=layout.name))
    return layout.cls(*values, V2, timestamp_us)


def _v1_ticks(buf: bytes, count: int) -> tuple[PriceTick, ...]:
    unknown_q, unknown_s, make = QuoteQuality.UNKNOWN, MarketSession.UNKNOWN, PriceTick._make
    return tuple(
        [
            make((sid, bid / 100000, ask / 100000, spread, unknown_q, True, unknown_s, server))
            for sid, bid, ask, spread, server in V1_ROW.iter_unpack(
                buf[HEADER_SIZE : HEADER_SIZE + V1_RECORD_SIZE * count]
            )
        ]
    )


def _truncated(what: str, need: int, offset: int, buf: bytes) -> ProtocolError:
    return ProtocolError(E.ERR_TRUNCATED.format(what=what, need=need, offset=offset, size=len(buf)))


def _decode_body(layout: Layout, buf: bytes, offset: int, where: str) -> tuple[list, int]:
    end = offset + layout.fixed.size
    if end > len(buf):
        raise _truncated(f"{where} fixed fields", layout.fixed.size, offset, buf)
    values = list(layout.fixed.unpack_from(buf, offset))
    for i, lo, hi, name in layout.checks:
        if not lo <= values[i] <= hi:
            raise ProtocolError(E.ERR_RANGE.format(what=f"{where}.{name}", value=values[i], lo=lo, hi=hi))
    for i, table, name, type_name in layout.lookups:
        value = table.get(values[i])
        if value is None:
            raise ProtocolError(E.ERR_ENUM.format(what=f"{where}.{name}", value=values[i], enum=type_name))
        values[i] = value
    for i, optional, _name in layout.uuids:
        values[i] = None if optional and values[i] == ZERO_UUID else UUID(bytes=values[i])
    for spec in layout.fields[layout.n_fixed :]:
        value, end = _READERS[type(spec.kind)](spec, buf, end, f"{where}.{spec.name}")
        values.append(value)
    return values, end


def _read_text(spec: Field, buf: bytes, offset: int, what: str) -> tuple[str, int]:
    kind = spec.kind
    if kind.prefix == "B":
        if offset >= len(buf):
            raise _truncated(f"{what} length", 1, offset, buf)
        size, start = buf[offset], offset + 1
    else:
        if offset + 2 > len(buf):
            raise _truncated(f"{what} length", 2, offset, buf)
        size, start = buf[offset] | buf[offset + 1] << 8, offset + 2
    if not kind.min_bytes <= size <= kind.max_bytes:
        raise ProtocolError(E.ERR_TEXT_LENGTH.format(what=what, size=size, lo=kind.min_bytes, hi=kind.max_bytes))
    end = start + size
    if end > len(buf):
        raise _truncated(what, size, start, buf)
    try:
        text = buf[start:end].decode()
    except UnicodeDecodeError:
        raise ProtocolError(E.ERR_TEXT_UTF8.format(what=what)) from None
    if "\x00" in text:
        raise ProtocolError(E.ERR_TEXT_NUL.format(what=what))
    return text, end


def _read_count(prefix: str, buf: bytes, offset: int, what: str) -> tuple[int, int]:
    if prefix == "B":
        if offset >= len(buf):
            raise _truncated(f"{what} count", 1, offset, buf)
        return buf[offset], offset + 1
    if offset + 2 > len(buf):
        raise _truncated(f"{what} count", 2, offset, buf)
    return buf[offset] | buf[offset + 1] << 8, offset + 2


def _read_items(spec: Field, buf: bytes, offset: int, what: str) -> tuple[tuple, int]:
    kind = spec.kind
    count, offset = _read_count(kind.count, buf, offset, what)
    if count > kind.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what=what, count=count, limit=kind.max_items))
    layout = item_layout(kind.item)
    scalar = get_origin(kind.item) is Annotated
    if layout.n_fixed == len(layout.fields):
        end = offset + layout.fixed.size * count
        if end > len(buf):
            raise _truncated(f"{what} ({count} items)", layout.fixed.size * count, offset, buf)
        columns = _checked_columns(layout, buf, offset, count, what)
        if scalar:
            return (columns[0] if count else ()), end
        tail = [repeat(default) for default in layout.defaults]
        return tuple(map(layout.cls._make, zip(*columns, *tail, strict=False))), end
    items = []
    for i in range(count):
        values, offset = _decode_body(layout, buf, offset, f"{what}[{i}]")
        items.append(values[0] if scalar else layout.cls(*values))
    return tuple(items), offset


@lru_cache(maxsize=512)
def _block(fmt: str, count: int) -> struct.Struct:
    return struct.Struct("<" + fmt[1:] * count)


def _checked_columns(layout: Layout, buf: bytes, offset: int, count: int, what: str, convert: bool = True) -> list:
    """``count`` fixed-size records at ``offset`` → one column per field, each column checked with a few C calls
    (min/max/sum, a set); when a column fails, it is rechecked row by row for the precise error.
    ``convert=False`` keeps enums as the plain ints a database column takes (bools still become bools)."""
    if not count:
        return [()] * layout.n_fixed
    flat = _block(layout.fixed.format, count).unpack_from(buf, offset)
    k = layout.n_fixed
    columns = [flat[i::k] for i in range(k)]
    for i, lo, hi, name in layout.checks:
        column = columns[i]
        if not (lo <= min(column) and (sum(column) <= hi if lo >= 0 else max(column) <= hi and sum(column) < INF)):
            for row, value in enumerate(column):
                if not lo <= value <= hi:
                    raise ProtocolError(E.ERR_RANGE.format(what=f"{what}[{row}].{name}", value=value, lo=lo, hi=hi))
    for i, table, name, type_name in layout.lookups:
        column = columns[i]
        if not table.keys() >= set(column):
            row, value = next((row, value) for row, value in enumerate(column) if value not in table)
            raise ProtocolError(E.ERR_ENUM.format(what=f"{what}[{row}].{name}", value=value, enum=type_name))
        if table is BOOLS:
            columns[i] = tuple(map(bool, column))
        elif convert:
            columns[i] = tuple(map(table.__getitem__, column))
    for i, optional, _name in layout.uuids:
        columns[i] = tuple(None if optional and raw == ZERO_UUID else UUID(bytes=raw) for raw in columns[i])
    return columns


def _read_pairs(spec: Field, buf: bytes, offset: int, what: str) -> tuple[tuple, int]:
    kind = spec.kind
    count, offset = _read_count("B", buf, offset, what)
    if count > kind.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what=what, count=count, limit=kind.max_items))
    pairs, seen = [], set()
    for i in range(count):
        key, offset = _read_text(PAIR_KEY, buf, offset, f"{what}[{i}].key")
        value, offset = _read_text(PAIR_VALUE, buf, offset, f"{what}[{i}].value")
        if key in seen:
            raise ProtocolError(E.ERR_DUPLICATE.format(what=what, key=key))
        seen.add(key)
        pairs.append((key, value))
    return tuple(pairs), offset


PAIR_KEY: Final = Field("key", str, Text("str8", "B", 64, 1))
PAIR_VALUE: Final = Field("value", str, Text("str8", "B", 255, 0))
_READERS: Final = {Text: _read_text, Items: _read_items, Pairs: _read_pairs}


# --- encode -----------------------------------------------------------------------------------------------------
def encode(msg: Message, *, pad: bool = False) -> bytes:
    """A message → one frame. ``pad=True`` zero-pads a v1 price stream of ≤ 8 records to 144 bytes, as the legacy
    EA sends it. Raises ProtocolError for a message that decode() would not accept back."""
    layout = LAYOUT_BY_CLASS.get(type(msg))
    if layout is None:
        raise TypeError(f"not a binproto message: {type(msg).__name__}")
    timestamp_us = msg.timestamp_us
    if type(timestamp_us) is not int or not 0 <= timestamp_us <= U64_MAX:
        raise ProtocolError(
            E.ERR_RANGE.format(what=f"{layout.name}.timestamp_us", value=timestamp_us, lo=0, hi=U64_MAX)
        )
    if msg.version == V1:
        if type(msg) is not PriceStream:
            raise ProtocolError(E.ERR_V1_ONLY_PRICES.format(name=layout.name))
        return _encode_v1(msg, pad)
    if msg.version != V2:
        raise ProtocolError(E.ERR_BAD_VERSION.format(version=msg.version))
    if pad:
        raise ProtocolError(E.ERR_V1_ONLY_PRICES.format(name=f"zero-padded {layout.name}"))
    parts = [HEADER.pack(MAGIC, V2, layout.cls.TYPE, 0, timestamp_us)]
    _encode_body(layout, [getattr(msg, spec.name) for spec in layout.fields], parts, layout.name)
    frame = b"".join(parts)
    if len(frame) > MAX_FRAME_SIZE:
        raise ProtocolError(E.ERR_TOO_LARGE.format(size=len(frame), limit=MAX_FRAME_SIZE))
    return frame


def _encode_v1(msg: PriceStream, pad: bool) -> bytes:
    ticks = msg.ticks
    limit = V1_SLOTS if pad else V1_MAX_RECORDS
    if type(ticks) not in (tuple, list) or len(ticks) > limit:
        raise ProtocolError(E.ERR_COUNT.format(what="PriceStream.ticks", count=len(ticks), limit=limit))
    flat = []
    for row, tick in enumerate(ticks):
        flat += check_v1_tick(tick, f"PriceStream.ticks[{row}]")
    frame = HEADER.pack(MAGIC, V1, MsgType.PRICE_STREAM, len(ticks), msg.timestamp_us)
    frame += struct.pack("<" + "IIIHH" * len(ticks), *flat)
    return frame + bytes(V1_PACKET_SIZE - len(frame)) if pad else frame


V1_DEFAULTS: Final = (
    ("quote_quality", QuoteQuality.UNKNOWN),
    ("tradeable", True),
    ("market_session", MarketSession.UNKNOWN),
)


def check_v1_tick(tick: Any, what: str) -> tuple[int, int, int, int, int]:
    """A tick as v1 can carry it → its wire values (symbol id, bid, ask, spread, server id), or ProtocolError."""
    if not isinstance(tick, PriceTick):
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a PriceTick", kind=type(tick).__name__))
    for name, default in V1_DEFAULTS:
        value = getattr(tick, name)
        if value != default:
            raise ProtocolError(E.ERR_V1_FIELD.format(what=f"{what}.{name}", value=value, default=default))
    scaled = []
    for name in ("bid", "ask"):
        value = getattr(tick, name)
        if type(value) not in (float, int) or not 0 <= value <= V1_MAX_PRICE:
            raise ProtocolError(E.ERR_V1_PRICE.format(what=f"{what}.{name}", value=value))
        scaled.append(min(round(value * V1_PRICE_SCALE), 0xFFFF_FFFF))
    for name, hi in (("symbol", 0xFFFF_FFFF), ("spread_points", 0xFFFF), ("server_id", 0xFFFF)):
        value = getattr(tick, name)
        if type(value) is not int or not 0 <= value <= hi:
            raise ProtocolError(E.ERR_RANGE.format(what=f"{what}.{name}", value=value, lo=0, hi=hi))
    return tick.symbol, scaled[0], scaled[1], tick.spread_points, tick.server_id


def _encode_body(layout: Layout, values: list, parts: list, where: str) -> None:
    fixed = values[: layout.n_fixed]
    try:
        for i, lo, hi, name in layout.checks:
            if not lo <= fixed[i] <= hi:
                raise ProtocolError(E.ERR_RANGE.format(what=f"{where}.{name}", value=fixed[i], lo=lo, hi=hi))
        for i, table, name, type_name in layout.lookups:
            if fixed[i] not in table or type(fixed[i]) is float:
                raise ProtocolError(E.ERR_ENUM.format(what=f"{where}.{name}", value=fixed[i], enum=type_name))
        for i, optional, name in layout.uuids:
            value = fixed[i]
            if optional and value is None:
                fixed[i] = ZERO_UUID
            elif type(value) is UUID and not (optional and value.int == 0):
                fixed[i] = value.bytes
            else:
                raise ProtocolError(E.ERR_TYPE.format(what=f"{where}.{name}", expected="a UUID", kind=repr(value)))
        parts.append(layout.fixed.pack(*fixed))
    except (TypeError, struct.error) as exc:
        raise ProtocolError(f"{where}: {exc}") from None
    for spec, value in zip(layout.fields[layout.n_fixed :], values[layout.n_fixed :], strict=True):
        _WRITERS[type(spec.kind)](spec, value, parts, f"{where}.{spec.name}")


def _write_text(spec: Field, value: Any, parts: list, what: str) -> None:
    kind = spec.kind
    if type(value) is not str:
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a str", kind=type(value).__name__))
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        raise ProtocolError(E.ERR_TEXT_UTF8.format(what=what)) from None
    if "\x00" in value:
        raise ProtocolError(E.ERR_TEXT_NUL.format(what=what))
    if not kind.min_bytes <= len(raw) <= kind.max_bytes:
        raise ProtocolError(E.ERR_TEXT_LENGTH.format(what=what, size=len(raw), lo=kind.min_bytes, hi=kind.max_bytes))
    parts.append(struct.pack("<" + kind.prefix, len(raw)))
    parts.append(raw)


def _write_items(spec: Field, value: Any, parts: list, what: str) -> None:
    kind = spec.kind
    if type(value) not in (tuple, list):
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a tuple", kind=type(value).__name__))
    if len(value) > kind.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what=what, count=len(value), limit=kind.max_items))
    parts.append(struct.pack("<" + kind.count, len(value)))
    layout = item_layout(kind.item)
    scalar = get_origin(kind.item) is Annotated
    if layout.n_fixed == len(layout.fields) and value:
        block = _pack_columns(layout, value, scalar)
        if block is not None:
            parts.append(block)
            return
    n_wire = len(layout.fields)
    for i, item in enumerate(value):
        where = f"{what}[{i}]"
        if scalar:
            item = (item,)
        elif not isinstance(item, layout.cls):
            raise ProtocolError(E.ERR_TYPE.format(what=where, expected=layout.name, kind=type(item).__name__))
        extras = () if scalar else zip(layout.cls._fields[n_wire:], layout.defaults, item[n_wire:], strict=True)
        for name, default, extra in extras:
            if extra != default:
                raise ProtocolError(E.ERR_V2_SERVER_ID.format(what=f"{where}.{name}", value=extra))
        _encode_body(layout, list(item[:n_wire]), parts, where)


def _pack_columns(layout: Layout, items: Any, scalar: bool) -> bytes | None:
    """Fixed-size records packed column-wise, or None when any check fails (the caller then finds which, row by row)."""
    try:
        if scalar:
            columns = [items]
        else:
            if not all(map(isinstance, items, repeat(layout.cls))):
                return None
            columns = list(zip(*items, strict=True))
            n_wire = len(layout.fields)
            for default, column in zip(layout.defaults, columns[n_wire:], strict=True):
                if set(column) != {default}:
                    return None
            del columns[n_wire:]
        for i, lo, hi, _name in layout.checks:
            column = columns[i]
            total = sum(column)
            if not (lo <= min(column) and max(column) <= hi and total == total):
                return None
        for i, table, _name, _type_name in layout.lookups:
            if not table.keys() >= set(columns[i]) or float in set(map(type, columns[i])):
                return None
        for i, optional, _name in layout.uuids:
            column = columns[i]
            if not all((type(v) is UUID and not (optional and v.int == 0)) or (optional and v is None) for v in column):
                return None
            columns[i] = [ZERO_UUID if v is None else v.bytes for v in columns[i]]
        return b"".join(map(layout.fixed.pack, *columns))
    except (TypeError, struct.error):
        return None


def _write_pairs(spec: Field, value: Any, parts: list, what: str) -> None:
    kind = spec.kind
    if type(value) not in (tuple, list):
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a tuple of (key, value)", kind=type(value).__name__))
    if len(value) > kind.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what=what, count=len(value), limit=kind.max_items))
    parts.append(struct.pack("<B", len(value)))
    seen = set()
    for i, pair in enumerate(value):
        if type(pair) not in (tuple, list) or len(pair) != 2:
            raise ProtocolError(E.ERR_TYPE.format(what=f"{what}[{i}]", expected="a (key, value) pair", kind=repr(pair)))
        key, text = pair
        _write_text(PAIR_KEY, key, parts, f"{what}[{i}].key")
        _write_text(PAIR_VALUE, text, parts, f"{what}[{i}].value")
        if key in seen:
            raise ProtocolError(E.ERR_DUPLICATE.format(what=what, key=key))
        seen.add(key)


_WRITERS: Final = {Text: _write_text, Items: _write_items, Pairs: _write_pairs}


# --- the ingest fast path ---------------------------------------------------------------------------------------
ROW_FIELDS: Final = PriceTick._fields  # rows are ticks with the symbol resolved to its name; enums as plain ints


def _v1_price_records(buf: bytes) -> tuple[int, list[tuple[int, int, int, int, int]]] | None:
    """The legacy EA's packet checked inline (the hottest input on the server): (timestamp µs, wire records), or
    None when the frame is anything else, valid or not, for the caller's precise path."""
    size = len(buf)
    if size >= 16:
        magic, version, msg_type, count, timestamp_us = HEADER.unpack_from(buf)
        end = 16 + 16 * count
        if (
            magic == 0x53554854
            and version == 1
            and msg_type == 1
            and (size == end or (size == 144 and count <= 8 and buf[end:] == V1_ZERO_PADDING[end:]))
        ):
            return timestamp_us, list(V1_ROW.iter_unpack(buf[16:end]))
    return None


def decode_v1_price_records(buf: bytes | bytearray | memoryview) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """A v1 PRICE_STREAM frame → (header timestamp µs, its records as on the wire): V1_RECORD_FIELDS, that is
    (symbol_id, bid, ask, spread_points, server_id) with the prices still × V1_PRICE_SCALE.

    The ingest path's decode: the legacy EA's 144-byte packet is the server's hottest input, so this checks the
    header, length and padding and does one C-level unpack, nothing more. The caller names the symbols, drops ids
    its table lacks and scales the prices in the same pass that builds its own rows (decode_price_rows does both
    here and makes each row twice). Any other frame raises ProtocolError with decode()'s reason.
    """
    if type(buf) is not bytes:
        buf = _as_bytes(buf)
    v1 = _v1_price_records(buf)
    if v1 is not None:
        return v1
    version, msg_type, _count, _timestamp_us = _read_header(buf)  # raises the precise error, or it is version 2
    if msg_type != MsgType.PRICE_STREAM:
        raise ProtocolError(E.ERR_NOT_PRICE_STREAM.format(name=MsgType(msg_type).name))
    raise ProtocolError(E.ERR_NOT_V1.format(version=version))


def decode_price_rows(
    buf: bytes | bytearray | memoryview, symbol_names: Mapping[int, str] | None = None
) -> tuple[int, list[tuple]]:
    """A PRICE_STREAM frame → (header timestamp µs, rows) for one batched INSERT, each row
    (symbol, bid, ask, spread_points, quote_quality, tradeable, market_session, server_id) — ROW_FIELDS.

    ``symbol_names`` maps v1 symbol ids (default DEFAULT_V1_SYMBOLS; pass the account's table to override) or, for
    v2, the connection's SYMBOL_TABLE indexes (required). A v1 record whose id the table does not name (255 is the
    EA's "unknown") carries no usable quote and yields no row; a v2 index missing from the table is a ProtocolError.
    The timestamp is the header's, unchecked: pass it through resolve_timestamp().
    """
    if type(buf) is not bytes:
        buf = _as_bytes(buf)
    v1 = _v1_price_records(buf)
    if v1 is not None:
        timestamp_us, records = v1
        names = _V1_NAMES if symbol_names is None else symbol_names
        rows = [
            (names[sid], bid / 100000, ask / 100000, spread, 0, True, 0, server)
            for sid, bid, ask, spread, server in records
            if sid in names
        ]
        return timestamp_us, rows
    _version, msg_type, count, timestamp_us = _read_header(buf)  # raises the precise error, or it is version 2
    if msg_type != MsgType.PRICE_STREAM:
        raise ProtocolError(E.ERR_NOT_PRICE_STREAM.format(name=MsgType(msg_type).name))
    if symbol_names is None:
        raise ProtocolError(E.ERR_NO_SYMBOL_TABLE)
    layout = _TICK_LAYOUT
    count, offset = _read_count("H", buf, HEADER_SIZE, "PriceStream.ticks")
    if count > _TICKS.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what="PriceStream.ticks", count=count, limit=_TICKS.max_items))
    end = offset + layout.fixed.size * count
    if end != len(buf):
        if end > len(buf):
            raise _truncated(f"PriceStream.ticks ({count} items)", end - offset, offset, buf)
        raise ProtocolError(E.ERR_TRAILING.format(size=len(buf), extra=len(buf) - end, name="PriceStream"))
    if not count:
        return timestamp_us, []
    columns = _checked_columns(_TICK_LAYOUT, buf, offset, count, "PriceStream.ticks", convert=False)
    indexes = columns[0]
    try:
        symbols = list(map(symbol_names.__getitem__, indexes))
    except KeyError:
        row, index = next((row, i) for row, i in enumerate(indexes) if i not in symbol_names)
        error = E.ERR_UNKNOWN_SYMBOL.format(what=f"PriceStream.ticks[{row}].symbol", index=index)
        raise ProtocolError(error, ErrorCode.UNKNOWN_SYMBOL) from None
    return timestamp_us, list(zip(symbols, *columns[1:], repeat(0)))


_V1_NAMES: Final = dict(DEFAULT_V1_SYMBOLS)  # a plain dict: CPython specialises dict subscripts, not mappingproxy
_TICKS: Final = LAYOUT_BY_CLASS[PriceStream].fields[0].kind
_TICK_LAYOUT: Final = item_layout(PriceTick)


def resolve_timestamp(
    timestamp_us: int,
    received_us: int,
    *,
    max_future_us: int = MAX_FUTURE_SKEW_US,
    max_past_us: int = MAX_PAST_SKEW_US,
) -> tuple[int, bool]:
    """(time to record, trusted). A header timestamp more than 5 minutes ahead of or 24 hours behind the receive
    time is implausible — the v1 EA sends GetTickCount(), milliseconds since its machine booted — so the receive
    time is used and trusted is False, for the caller to record."""
    if received_us - max_past_us <= timestamp_us <= received_us + max_future_us:
        return timestamp_us, True
    return received_us, False
