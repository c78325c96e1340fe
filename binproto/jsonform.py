"""The JSON form of every message: WebSocket text frames (debugging) and anything that speaks JSON to us.

``{"type": "trade_opened", "version": 2, "timestamp": <µs int>, ...fields}``: field names as in messages.py,
UUIDs as strings (null for an absent optional id), enums as lower-case member names, timestamps as integer µs,
records as objects, key/value parameters as one object. from_dict() checks exactly what decode() checks.
"""

import json
import math
import struct
from enum import IntEnum
from typing import Annotated, Any, Final, get_origin
from uuid import UUID

from binproto import errors as E
from binproto.codec import (
    LAYOUT_BY_CLASS,
    LAYOUT_BY_TYPE,
    PAIR_KEY,
    PAIR_VALUE,
    U64_MAX,
    Field,
    check_v1_tick,
    item_layout,
)
from binproto.constants import MAX_JSON_FRAME_SIZE, SUPPORTED_VERSIONS, V1, V1_MAX_RECORDS, ErrorCode, MsgType
from binproto.errors import ProtocolError
from binproto.messages import Fixed, Message, Pairs, PriceStream, PriceTick, Text

TYPE_NAMES: Final = {msg_type: msg_type.name.lower() for msg_type in LAYOUT_BY_TYPE}
TYPES_BY_NAME: Final = {name: msg_type for msg_type, name in TYPE_NAMES.items()}
INT_RANGES: Final = {fmt: (0, 2 ** (8 * struct.calcsize(fmt)) - 1) for fmt in "BHIQ"}


# --- to JSON ----------------------------------------------------------------------------------------------------
def to_dict(msg: Message) -> dict:
    layout = LAYOUT_BY_CLASS.get(type(msg))
    if layout is None:
        raise TypeError(f"not a binproto message: {type(msg).__name__}")
    out = {"type": TYPE_NAMES[layout.cls.TYPE], "version": msg.version, "timestamp": msg.timestamp_us}
    for spec in layout.fields:
        out[spec.name] = _out(spec, getattr(msg, spec.name), msg.version == V1)
    return out


def _out(spec: Field, value: Any, v1: bool = False) -> Any:
    """A field's JSON value. Record fields that only version 1 carries (PriceTick.server_id) appear only in v1."""
    kind = spec.kind
    if isinstance(kind, Fixed):
        if value is None or type(value) in (int, float, bool, str):
            return value
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, IntEnum):
            return value.name.lower()
        return value
    if isinstance(kind, Text):
        return value
    if isinstance(kind, Pairs):
        return dict(value)
    layout = item_layout(kind.item)
    if get_origin(kind.item) is Annotated:
        return [_out(layout.fields[0], item) for item in value]
    n_wire = len(layout.fields)
    return [
        {
            **{spec.name: _out(spec, v) for spec, v in zip(layout.fields, item, strict=False)},
            **(dict(zip(layout.cls._fields[n_wire:], item[n_wire:], strict=True)) if v1 else {}),
        }
        for item in value
    ]


def to_json(msg: Message) -> str:
    return json.dumps(to_dict(msg), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --- from JSON --------------------------------------------------------------------------------------------------
def _reject_constant(name: str) -> None:
    raise ProtocolError(E.ERR_JSON_SYNTAX.format(reason=f"{name} is not a number"))


def from_json(text: str | bytes) -> Message:
    if len(text) > MAX_JSON_FRAME_SIZE:
        raise ProtocolError(E.ERR_JSON_TOO_LARGE.format(size=len(text), limit=MAX_JSON_FRAME_SIZE), ErrorCode.TOO_LARGE)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(E.ERR_JSON_SYNTAX.format(reason=exc)) from None
    return from_dict(data)


def from_dict(data: Any) -> Message:
    if type(data) is not dict:
        raise ProtocolError(E.ERR_JSON_OBJECT.format(kind=type(data).__name__))
    type_name = data.get("type")
    msg_type = TYPES_BY_NAME.get(type_name) if type(type_name) is str else None
    if msg_type is None:
        raise ProtocolError(E.ERR_JSON_TYPE_NAME.format(type=type_name), ErrorCode.UNKNOWN_TYPE)
    layout = LAYOUT_BY_TYPE[msg_type]
    version = data.get("version")
    if (
        type(version) is not int
        or version not in SUPPORTED_VERSIONS
        or (version == V1 and msg_type != MsgType.PRICE_STREAM)
    ):
        code = ErrorCode.UNKNOWN_TYPE if version == V1 else ErrorCode.UNSUPPORTED_VERSION  # v1 carries only prices
        raise ProtocolError(E.ERR_BAD_VERSION.format(version=version), code)
    timestamp = data.get("timestamp")
    if type(timestamp) is not int or not 0 <= timestamp <= U64_MAX:
        raise ProtocolError(E.ERR_RANGE.format(what=f"{layout.name}.timestamp", value=timestamp, lo=0, hi=U64_MAX))
    if version == V1:
        return _v1_price_stream_in(data, timestamp)
    values = _fields_in(layout, data, layout.name, {"type", "version", "timestamp"}, {})
    return layout.cls(**values, version=version, timestamp_us=timestamp)


def _v1_price_stream_in(data: dict, timestamp: int) -> PriceStream:
    """v1 ticks: a u32 symbol id, a u16 server id, and only the defaults for what v1 cannot carry."""
    unknown = data.keys() - {"type", "version", "timestamp", "ticks"}
    if unknown or "ticks" not in data:
        raise ProtocolError(E.ERR_JSON_UNKNOWN.format(name="PriceStream", fields=sorted(unknown) or ["(no ticks)"]))
    ticks = data["ticks"]
    if type(ticks) is not list or len(ticks) > V1_MAX_RECORDS:
        raise ProtocolError(E.ERR_TYPE.format(what="PriceStream.ticks", expected="an array of ≤ 255", kind=repr(ticks)))
    fields = (V1_SYMBOL, *_TICK.fields[1:], V1_SERVER_ID)
    out = []
    for row, tick in enumerate(ticks):
        what = f"PriceStream.ticks[{row}]"
        if type(tick) is not dict:
            raise ProtocolError(E.ERR_TYPE.format(what=what, expected="an object", kind=type(tick).__name__))
        missing = {spec.name for spec in fields} - tick.keys()
        if missing or len(tick) != len(fields):
            raise ProtocolError(E.ERR_JSON_MISSING.format(name=what, fields=sorted(missing) or PriceTick._fields))
        values = PriceTick(**{spec.name: _in(spec, tick[spec.name], f"{what}.{spec.name}") for spec in fields})
        check_v1_tick(values, what)
        out.append(values)
    return PriceStream(tuple(out), V1, timestamp)


_TICK: Final = item_layout(PriceTick)
V1_SYMBOL: Final = Field("symbol", int, Fixed("u32", "I"))
V1_SERVER_ID: Final = Field("server_id", int, Fixed("u16", "H"))


def _fields_in(layout: Any, data: dict, where: str, header: set, optional: dict) -> dict:
    names = {spec.name for spec in layout.fields}
    missing = names - data.keys()
    if missing:
        raise ProtocolError(E.ERR_JSON_MISSING.format(name=where, fields=sorted(missing)))
    unknown = data.keys() - names - header - optional.keys()
    if unknown:
        raise ProtocolError(E.ERR_JSON_UNKNOWN.format(name=where, fields=sorted(unknown)))
    values = {spec.name: _in(spec, data[spec.name], f"{where}.{spec.name}") for spec in layout.fields}
    for name, default in optional.items():  # fields only version 1 carries (PriceTick.server_id): default or absent
        value = data.get(name, default)
        if type(value) is not type(default) or value != default:
            raise ProtocolError(E.ERR_V2_SERVER_ID.format(what=f"{where}.{name}", value=value))
        values[name] = value
    return values


def _in(spec: Field, value: Any, what: str) -> Any:
    kind = spec.kind
    if isinstance(kind, Fixed):
        return _fixed_in(spec, value, what)
    if isinstance(kind, Text):
        return _text_in(kind, value, what)
    if isinstance(kind, Pairs):
        if type(value) is not dict:
            raise ProtocolError(E.ERR_TYPE.format(what=what, expected="an object", kind=type(value).__name__))
        if len(value) > kind.max_items:
            raise ProtocolError(E.ERR_COUNT.format(what=what, count=len(value), limit=kind.max_items))
        return tuple(
            (_text_in(PAIR_KEY.kind, key, f"{what} key"), _text_in(PAIR_VALUE.kind, text, f"{what}[{key!r}]"))
            for key, text in value.items()
        )
    if type(value) is not list:
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="an array", kind=type(value).__name__))
    if len(value) > kind.max_items:
        raise ProtocolError(E.ERR_COUNT.format(what=what, count=len(value), limit=kind.max_items))
    layout = item_layout(kind.item)
    if get_origin(kind.item) is Annotated:
        return tuple(_in(layout.fields[0], item, f"{what}[{i}]") for i, item in enumerate(value))
    n_wire = len(layout.fields)
    optional = dict(zip(layout.cls._fields[n_wire:], layout.defaults, strict=True))
    items = []
    for i, item in enumerate(value):
        if type(item) is not dict:
            raise ProtocolError(E.ERR_TYPE.format(what=f"{what}[{i}]", expected="an object", kind=type(item).__name__))
        items.append(layout.cls(**_fields_in(layout, item, f"{what}[{i}]", set(), optional)))
    return tuple(items)


def _fixed_in(spec: Field, value: Any, what: str) -> Any:
    kind, pytype = spec.kind, spec.pytype
    if kind.fmt == "16s":
        if value is None and kind.name == "uuid/0":
            return None
        if type(value) is not str:
            raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a UUID string", kind=type(value).__name__))
        try:
            uuid = UUID(value)
        except ValueError:
            raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a UUID string", kind=repr(value))) from None
        return None if uuid.int == 0 and kind.name == "uuid/0" else uuid
    if pytype is bool:
        if type(value) is not bool:
            raise ProtocolError(E.ERR_TYPE.format(what=what, expected="true or false", kind=type(value).__name__))
        return value
    if isinstance(pytype, type) and issubclass(pytype, IntEnum):
        members = _enum_names(pytype, kind)
        member = members.get(value.lower()) if type(value) is str else None
        if member is None:
            raise ProtocolError(E.ERR_ENUM.format(what=what, value=value, enum=pytype.__name__))
        return member
    if kind.fmt == "d":
        if type(value) not in (int, float) or not kind.lo <= value <= kind.hi:
            raise ProtocolError(E.ERR_RANGE.format(what=what, value=value, lo=kind.lo, hi=kind.hi))
        return float(value)
    lo, hi = INT_RANGES[kind.fmt]
    lo, hi = max(lo, kind.lo or lo), min(hi, hi if kind.hi is None else kind.hi)
    if type(value) is not int or not lo <= value <= hi:
        raise ProtocolError(E.ERR_RANGE.format(what=what, value=value, lo=lo, hi=hi))
    return value


_ENUM_NAMES: dict = {}


def _enum_names(enum: type[IntEnum], kind: Fixed) -> dict[str, IntEnum]:
    key = (enum, kind.lo, kind.hi)
    names = _ENUM_NAMES.get(key)
    if names is None:
        lo = -math.inf if kind.lo is None else kind.lo
        hi = math.inf if kind.hi is None else kind.hi
        names = _ENUM_NAMES[key] = {m.name.lower(): m for m in enum if lo <= m <= hi}
    return names


def _text_in(kind: Text, value: Any, what: str) -> str:
    if type(value) is not str:
        raise ProtocolError(E.ERR_TYPE.format(what=what, expected="a string", kind=type(value).__name__))
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise ProtocolError(E.ERR_TEXT_UTF8.format(what=what)) from None
    if "\x00" in value:
        raise ProtocolError(E.ERR_TEXT_NUL.format(what=what))
    if not kind.min_bytes <= size <= kind.max_bytes:
        raise ProtocolError(E.ERR_TEXT_LENGTH.format(what=what, size=size, lo=kind.min_bytes, hi=kind.max_bytes))
    return value
