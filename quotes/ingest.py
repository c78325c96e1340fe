"""Broker ticks: published to NATS as decoded, then batched writes (one set-based INSERT per tenant) and the cache
(ARCHITECTURE §4)."""

from __future__ import annotations

import json
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

import orjson
from django.db import DataError, connections, transaction

from suho.bus import PubBlock, pub_prefix, subject_token
from suho.cache import QUOTE_TTL_S, cache_set_many_json, quote_key
from suho.clock import sql_us_to_timestamptz, us_to_iso
from suho.routers import SERVICE
from suho.tenancy import TENANT_SETTING


class TickRow(NamedTuple):
    """A tick's row, in the order of the COPY's columns. The gateway makes them as plain tuples in this order, and
    the functions below take lists of tuples in it (TickRows included): a tuple of plain values leaves the garbage
    collector's lists at its first collection and is made ~3× faster, where a NamedTuple stays tracked, and tens of
    thousands a second wait for their batch: the collector's passes over them paused the event loop (decision 0031)."""

    time_us: int
    tenant_id: str  # the ids as text, never UUID objects: the COPY sends them as text (COPY_QUOTES_TYPES)
    account_id: str
    symbol: str
    bid: float
    ask: float
    spread: float
    quote_quality: int
    tradeable: bool
    market_session: str
    timestamp_trusted: bool


# Each tick is priced against the reference quote of the same instant (seed §6.2): the newest reference quote of
# its symbol (broker suffix stripped) at or before the tick and at most REFERENCE_MAX_AGE_S older; none → NULLs.
REFERENCE_MAX_AGE_S = 5
TICK_COLUMNS = "t, tenant, account, symbol, bid, ask, spread, quality, tradeable, session, trusted"
INSERT_QUOTES_FROM = f"""
INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask, spread, quote_quality, tradeable,
                               market_session, timestamp_trusted, broker_server,
                               polygon_mid_price, price_deviation, deviation_percent)
SELECT t.time, tenant, account, symbol, bid, ask, spread, quality, tradeable, session, trusted, '',
       ref.mid, (bid + ask)::numeric / 2 - ref.mid, ((bid + ask)::numeric / 2 - ref.mid) * 100 / nullif(ref.mid, 0)
FROM (SELECT {sql_us_to_timestamptz("t")} AS time, * FROM {{source}}) AS t
LEFT JOIN LATERAL (
    SELECT (r.bid + r.ask) / 2 AS mid FROM mt5_reference_quotes r
    WHERE r.symbol = regexp_replace(upper(t.symbol), '[^A-Z0-9].*$', '')
      AND r.time <= t.time AND r.time > t.time - interval '{REFERENCE_MAX_AGE_S} seconds'
    ORDER BY r.time DESC LIMIT 1
) AS ref ON true
"""
INSERT_QUOTES = INSERT_QUOTES_FROM.format(
    source=f"""unnest(%s::bigint[], %s::uuid[], %s::uuid[], %s::text[], %s::float8[], %s::float8[], %s::float8[],
                  %s::smallint[], %s::boolean[], %s::text[], %s::boolean[]) AS s({TICK_COLUMNS})"""
)
# A large tenant group is copied into a temporary table and inserted from it (ARCHITECTURE §4): COPY moves rows
# several times faster than unnest's arrays; the row policies apply to the INSERT alike. The DELETE … RETURNING
# empties the table for the next large group in the same statement. Small groups keep the one-statement unnest.
# Binary COPY: a float goes as its 8 bytes, not as text that psycopg writes and PostgreSQL parses back, which
# halves the COPY's CPU in this process (issue 21). Its values must be of the columns' own types, so the ids,
# which TickRow holds as text, arrive as text and become uuids in the INSERT (as unnest's arrays parse them).
# psycopg packs binary integers itself and wraps a small one out of range, so the quality is staged as bigint and
# made smallint in the INSERT, where PostgreSQL range-checks it; a value no binary type holds (rows reach the data
# bridge as JSON) is a DataError, as PostgreSQL's own refusal of a text value was: its batch is isolated or skipped.
COPY_MIN_ROWS = 64
STAGE_QUOTES = """CREATE TEMPORARY TABLE IF NOT EXISTS suho_ticks_in (t bigint, tenant text, account text,
    symbol text, bid float8, ask float8, spread float8, quality bigint, tradeable boolean, session text,
    trusted boolean) ON COMMIT DROP"""
COPY_QUOTES = f"COPY suho_ticks_in ({TICK_COLUMNS}) FROM STDIN (FORMAT BINARY)"
# The COPY's types given, not looked up for every value of every row (a third of its cost); the staging table's.
COPY_QUOTES_TYPES = ("int8", "text", "text", "text", "float8", "float8", "float8", "int8", "bool", "text", "bool")
INSERT_QUOTES_STAGED = (
    "WITH staged AS (DELETE FROM suho_ticks_in RETURNING t, tenant::uuid AS tenant, account::uuid AS account, symbol,"
    " bid, ask, spread, quality::smallint AS quality, tradeable, session, trusted)"
    + INSERT_QUOTES_FROM.format(source="staged")
)


TENANT = TickRow._fields.index("tenant_id")  # TickRow's positions, for the plain tuples the gateway makes
PRICES = itemgetter(*(TickRow._fields.index(name) for name in ("bid", "ask", "spread")))
LATEST_KEY = itemgetter(*(TickRow._fields.index(name) for name in ("account_id", "symbol")))


def _by_tenant(rows: list) -> dict[str, list]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row[TENANT], []).append(row)
    return groups


def broker_quotes_insert(rows: list[tuple]) -> int:
    """Commit a batch of ticks (any tenants) in one transaction, each tenant's rows under its own context."""
    if not rows:
        return 0
    staged, connection = False, connections[SERVICE]
    with transaction.atomic(using=SERVICE), connection.cursor() as cursor:
        for tenant_id, group in _by_tenant(rows).items():
            cursor.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, tenant_id])
            if len(group) < COPY_MIN_ROWS:
                cursor.execute(INSERT_QUOTES, [list(column) for column in zip(*group, strict=True)])
                continue
            if not staged:
                cursor.execute(STAGE_QUOTES)
                staged = True
            with connection.wrap_database_errors, cursor.cursor.copy(COPY_QUOTES) as copy:  # Django's error types
                copy.set_types(COPY_QUOTES_TYPES)
                try:
                    for row in group:
                        copy.write_row(row)
                except (OverflowError, ValueError, TypeError) as exc:  # a value its binary type cannot hold
                    raise DataError(f"a tick the staging table cannot hold: {exc}") from exc
            cursor.execute(INSERT_QUOTES_STAGED)
    return len(rows)


# Bounded, evicting the least recently used one at a time (no pause to empty it): a process's accounts and their
# symbols make a few thousand; beyond the bound each miss costs ~2 µs. Called on the event loop only (volume_add).
@lru_cache(maxsize=32_768)
def _live_prefix(account_id: str, symbol: str) -> tuple[str, str]:
    """The start of the PUB command of an account's ticks of `symbol` (its subject) and of their JSON."""
    subject = f"mt5.account.{account_id}.quotes.{subject_token(symbol)}"
    return pub_prefix(subject), f'{{"symbol":{json.dumps(symbol)},"bid":'


def _prices_text(rows) -> list[str]:
    """The rows' bid, ask and spread, three per row in order, as JSON numbers' text from one orjson call: Python's
    float repr (~0.3 µs a number) was half the time of both functions below, and orjson writes the same shortest
    round-trip digits several times faster. Prices are finite (the session refuses the rest)."""
    return orjson.dumps([value for row in rows for value in PRICES(row)]).decode()[1:-1].split(",") if rows else []


def broker_quotes_live(rows: list[tuple]) -> PubBlock:
    """Each tick's message on mt5.account.{id}.quotes.{symbol}, which the gateway publishes as it decodes the frame:
    ticks are volume, so a live subscriber sees one within milliseconds instead of after its batch is stored (a tick
    can then be seen live and lost from storage in a crash: docs/streams.md). Made as NATS PUB commands (`PubBlock`)
    in one pass: per tick, this is the gateway's hottest code of its own (building (subject, bytes) pairs, then the
    commands, cost ~60 % more). The JSON is hand-built and ASCII (the symbol's JSON string escapes the rest;
    json.dumps of a dict costs ~4× more), so its length is its size; the subject is free of whitespace
    (`subject_token`)."""
    prices, at = _prices_text(rows), 0
    commands, size, largest = [], 0, 0
    for time_us, _tenant, account_id, symbol, _bid, _ask, _spread, _quality, tradeable, _session, _trusted in rows:
        pub, head = _live_prefix(account_id, symbol)
        payload = (
            f'{head}{prices[at]},"ask":{prices[at + 1]},"spread":{prices[at + 2]},'
            f'"time_us":{time_us},"tradeable":{"true" if tradeable else "false"}}}'
        )
        at += 3
        length = len(payload)  # in bytes too: the payload is ASCII
        commands.append(f"{pub}{length}\r\n{payload}\r\n")
        size += length
        if length > largest:
            largest = length
    return PubBlock(len(commands), "".join(commands).encode(), size, largest)


def broker_quotes_after_commit(rows: list[tuple]) -> None:
    """Latest quote per (account, symbol) into the cache (5 s TTL), once the batch is stored. Thousands of rows per
    batch, in the database thread, which holds the GIL the event loop needs to decode frames and publish live ticks:
    so the latest rows are picked in C (the batch is in arrival order: a later row replaces an earlier one), their
    prices written by orjson, a frame's timestamp formatted once, and the JSON written by hand (json.dumps of a dict
    costs ~3× more)."""
    latest = list(dict(zip(map(LATEST_KEY, rows), rows, strict=True)).values())
    prices, at = _prices_text(latest), 0
    isos: dict[int, str] = {}  # a frame's ticks share their time
    items = []
    for time_us, _tenant, account_id, symbol, *_rest in latest:
        iso = isos.get(time_us)
        if iso is None:
            iso = isos[time_us] = us_to_iso(time_us)
        items.append(
            (
                quote_key(account_id, symbol),
                f'{{"bid":{prices[at]},"ask":{prices[at + 1]},"spread":{prices[at + 2]},"timestamp":"{iso}"}}',
            )
        )
        at += 3
    cache_set_many_json(QUOTE_TTL_S, items)
