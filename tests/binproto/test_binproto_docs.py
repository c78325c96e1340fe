"""docs/protocol.md is generated from nothing but must agree with the code: its byte tables list every message's
fields, offsets and wire types exactly as binproto.describe() does, and its constant tables match the enums."""

import re
from pathlib import Path

import pytest

import binproto as bp
from binproto import constants as C

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
RECORDS = (bp.PriceTick, bp.SymbolEntry, bp.Position, bp.TradingWindow)


def table_after(heading: str) -> list[tuple[str, ...]]:
    """The first markdown table after a heading line that contains ``heading``, as rows of stripped cells."""
    match = re.search(rf"^#+ .*{re.escape(heading)}.*$", DOCS, flags=re.M)
    assert match, f"docs/protocol.md has no heading with {heading!r}"
    lines = DOCS[match.end() :].lstrip("\n").splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = tuple(cell.strip().strip("`") for cell in line.strip().strip("|").split("|"))
        if not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows[1:]  # without the header row


@pytest.mark.parametrize("cls", bp.MESSAGE_CLASSES + RECORDS, ids=lambda cls: cls.__name__)
def test_each_message_and_record_table_matches_the_layout(cls):
    name = cls.TYPE.name if hasattr(cls, "TYPE") else cls.__name__
    rows = [row[:3] for row in table_after(f"`{name}`")]
    assert rows == bp.describe(cls)


@pytest.mark.parametrize(
    "enum",
    [
        C.MsgType,
        C.QuoteQuality,
        C.MarketSession,
        C.AuthMethod,
        C.AccountType,
        C.OrderType,
        C.CloseReason,
        C.ConnectionStatus,
        C.AckStatus,
        C.AuthStatus,
        C.Action,
        C.SizingMethod,
        C.CommandType,
        C.EventAckStatus,
        C.ErrorCode,
        C.CloseCode,
    ],
    ids=lambda enum: enum.__name__,
)
def test_each_enum_table_matches_the_code(enum):
    rows = table_after(f"`{enum.__name__}`")
    documented = {(int(value, 0), name) for value, name, *_ in rows}
    assert documented == {(int(member), member.name) for member in enum}


def test_limits_table_matches_the_constants():
    rows = table_after("Size limits")
    for name, value, *_ in rows:
        assert getattr(C, name) == float(value), name
    assert {row[0] for row in rows} >= {
        "MAX_FRAME_SIZE",
        "MAX_JSON_FRAME_SIZE",
        "MAX_SYMBOL_BYTES",
        "MAX_LABEL_BYTES",
        "MAX_TEXT_BYTES",
        "MAX_TOKEN_BYTES",
        "MAX_SYMBOLS",
        "MAX_TICKS",
        "MAX_POSITIONS",
        "MAX_PARAMS",
        "MAX_TRADING_WINDOWS",
        "MAX_PROTOCOL_VERSIONS",
        "MAX_DIGITS",
        "MAX_F64",
    }


def test_default_v1_symbol_table_matches():
    rows = table_after("v1 symbol ids")
    assert {int(sid): name for sid, name, *_ in rows if name != "unknown"} == dict(bp.DEFAULT_V1_SYMBOLS)


def test_rate_limits_table_matches_the_constants():
    rows = table_after("Rate limits")
    documented = {name: (float(rate), int(burst)) for name, rate, burst in rows}
    assert documented.pop("anything else (undecodable, unknown or server types)") == C.RATE_LIMIT_OTHER
    assert documented == {kind.name: limit for kind, limit in C.RATE_LIMITS.items()}
    assert set(C.RATE_LIMITS) == {kind for kind in C.MsgType if kind < C.SERVER_TYPES_FROM}  # every EA message kind
