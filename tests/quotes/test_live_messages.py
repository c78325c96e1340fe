"""The live tick messages `quotes.ingest.broker_quotes_live` writes as NATS PUB commands (issue 21): their prices'
text comes from orjson rather than Python's repr, so a subscriber must still read back exactly the row's floats,
and the command's declared size must still be the payload's. A real server's delivery of such blocks is in
tests/streams/test_publish_batch.py."""

from __future__ import annotations

import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from quotes import ingest
from quotes.ingest import TickRow, broker_quotes_live
from trading.session import MAX_PRICE

ACCOUNT = str(uuid.uuid4())
prices = st.floats(min_value=5e-324, max_value=MAX_PRICE, allow_nan=False, allow_infinity=False)
spreads = st.one_of(st.integers(min_value=0, max_value=2**32 - 1), st.floats(allow_nan=False, allow_infinity=False))


def _messages(data: bytes) -> list[tuple[str, dict]]:
    """A block of PUB commands → (subject, parsed payload) each, checking each declared size against its payload."""
    messages, at = [], 0
    while at < len(data):
        line_end = data.index(b"\r\n", at)
        _pub, subject, size = data[at:line_end].decode().split(" ")
        payload = data[line_end + 2 : line_end + 2 + int(size)]
        assert data[line_end + 2 + int(size) : line_end + 4 + int(size)] == b"\r\n"  # the declared size is exact
        messages.append((subject, json.loads(payload)))
        at = line_end + 4 + int(size)
    return messages


def _row(bid: float, ask: float, spread: float, symbol: str = "EURUSD", tradeable: bool = True) -> TickRow:
    return TickRow(1_765_000_000_123_456, str(uuid.uuid4()), ACCOUNT, symbol, bid, ask, spread, 0, tradeable,
                   "london", True)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(prices, prices, spreads, st.booleans()), min_size=1, max_size=16))
def test_a_subscriber_reads_back_exactly_the_rows_prices(ticks):
    rows = [_row(bid, ask, spread, tradeable=tradeable) for bid, ask, spread, tradeable in ticks]
    block = broker_quotes_live(rows)
    messages = _messages(block.data)
    assert block.count == len(rows)
    assert [(m["bid"], m["ask"], m["spread"], m["tradeable"]) for _s, m in messages] == [
        (row.bid, row.ask, row.spread, row.tradeable) for row in rows
    ]
    assert {subject for subject, _m in messages} == {f"mt5.account.{ACCOUNT}.quotes.EURUSD"}
    declared = [int(line.split(b" ")[2]) for line in block.data.split(b"\r\n") if line.startswith(b"PUB ")]
    assert block.payload_bytes == sum(declared) and block.largest == max(declared)


def test_the_message_is_the_documented_json():
    """docs/streams.md's tick message, byte for byte, and a spread in points stays a whole number."""
    block = broker_quotes_live([_row(1.08523, 1.08531, 8)])
    assert (
        block.data
        == (
            f"PUB mt5.account.{ACCOUNT}.quotes.EURUSD 102\r\n"
            '{"symbol":"EURUSD","bid":1.08523,"ask":1.08531,"spread":8,"time_us":1765000000123456,"tradeable":true}\r\n'
        ).encode()
    )


def test_a_tick_not_tradeable_says_so_in_the_same_fields():
    """symbol, bid, ask, spread, time_us, tradeable, in that order, with tradeable false."""
    ((subject, payload),) = _messages(broker_quotes_live([_row(1.08523, 1.08531, 8, tradeable=False)]).data)
    assert subject == f"mt5.account.{ACCOUNT}.quotes.EURUSD"
    assert list(payload.items()) == [
        ("symbol", "EURUSD"), ("bid", 1.08523), ("ask", 1.08531), ("spread", 8), ("time_us", 1_765_000_000_123_456),
        ("tradeable", False),
    ]  # fmt: skip


def test_two_accounts_ticking_one_symbol_each_publish_on_their_own_subject():
    """The subjects are made once per (account, symbol) and kept: one account's must never serve another's, in one
    block or in the next."""
    other = str(uuid.uuid4())
    first = _row(1.1, 1.2, 1)
    second = first._replace(account_id=other, bid=2.1, ask=2.2)
    together = _messages(broker_quotes_live([first, second]).data)
    apart = _messages(broker_quotes_live([second]).data) + _messages(broker_quotes_live([first]).data)
    assert [(s, m["bid"]) for s, m in together] == [
        (f"mt5.account.{ACCOUNT}.quotes.EURUSD", 1.1), (f"mt5.account.{other}.quotes.EURUSD", 2.1)
    ]  # fmt: skip
    assert [(s, m["bid"]) for s, m in apart] == [
        (f"mt5.account.{other}.quotes.EURUSD", 2.1), (f"mt5.account.{ACCOUNT}.quotes.EURUSD", 1.1)
    ]  # fmt: skip


def test_the_kept_prefixes_are_bounded():
    """Accounts and symbols are what clients bring: the prefixes kept for them have a bound, and past it the least
    recently used one goes (no pause to empty them all) while what is made after that is still right."""
    bound = ingest._live_prefix.cache_info().maxsize
    assert bound is not None and bound <= 65_536
    ingest._live_prefix.cache_clear()
    for i in range(bound + 10):
        ingest._live_prefix(ACCOUNT, f"S{i}")
    assert ingest._live_prefix.cache_info().currsize == bound
    ((subject, message),) = _messages(broker_quotes_live([_row(1.5, 1.6, 2, symbol="S0")]).data)
    assert (subject, message["symbol"]) == (f"mt5.account.{ACCOUNT}.quotes.S0", "S0")
