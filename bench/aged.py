"""The hot paths' reads on a database with history (decisions 0004, 0029), run by bench.paths on each database.

A fresh bench database has a few partitions (TimescaleDB: chunks) per table, and a read that names no time costs
nothing there. The deployment's tables are time series kept for years: such a read plans and probes every one of
them. One account of its own gets a history, written as the owner with the tables' triggers off (on the plain
path into the partitions upkeep made over that time): an order a day for `DAYS` days, `AUDIT_PER_DAY` audit rows
a day for its tenant as long, and a broker quote every 30 minutes for `QUOTE_DAYS` days. Then, as the service role
in the tenant's context, as the gateway and the intake run them, each read is timed in the form the code had
before (unbounded) and in the form it has now, and the code paths that use them are timed whole: a HELLO claim
(which audits the connect) and a trade event's open, modify and close.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from uuid import UUID

import psycopg
from django.db import connections, transaction
from django.utils import timezone

from bench.stack import admin_dsn

DAYS = 365
AUDIT_PER_DAY = 50
QUOTE_DAYS = 14
REPEAT = 15

HISTORY = (
    "ALTER TABLE mt5_trade_orders DISABLE TRIGGER USER",
    f"""INSERT INTO mt5_trade_orders (order_id, time, tenant_id, account_id, ticket, symbol, order_type, volume,
        open_price, status, close_time, close_price, profit, commission, swap, close_reason, comment, updated_at)
      SELECT gen_random_uuid(), now() - g * interval '1 day', %(tenant)s, %(account)s, 900000 + g, 'EURUSD', 'buy',
             0.1, 1.1, 'closed', now() - g * interval '1 day' + interval '1 hour', 1.1, 1, 0, 0, 'manual', '', now()
        FROM generate_series(1, {DAYS}) g""",
    "ALTER TABLE mt5_trade_orders ENABLE TRIGGER USER",
    "ALTER TABLE mt5_audit_log DISABLE TRIGGER USER",
    f"""INSERT INTO mt5_audit_log (time, tenant_id, account_id, event_type, event_category, action,
        event_description, severity, metadata, prev_hash, row_hash, chain_seq)
      SELECT now() - (g / {AUDIT_PER_DAY} + 1) * interval '1 day', %(tenant)s, %(account)s, 'ea_connected',
             'connection', 'connect', 'history', 'info', '{{}}', '', '', -g
        FROM generate_series(1, {DAYS * AUDIT_PER_DAY}) g""",
    "ALTER TABLE mt5_audit_log ENABLE TRIGGER USER",
    f"""INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask, spread, quote_quality,
        tradeable, market_session, timestamp_trusted, broker_server)
      SELECT now() - g * interval '30 minutes', %(tenant)s, %(account)s, 'EURUSD', 1.1, 1.1002, 20, 100, true,
             'london', true, ''
        FROM generate_series(1, {QUOTE_DAYS * 48}) g""",
    "ANALYZE mt5_trade_orders, mt5_audit_log, mt5_broker_quotes",
)
# The reads as they were before decisions 0004 and 0029, for comparison.
BEFORE = {
    "loss": """SELECT SUM(profit) FILTER (WHERE DATE(close_time) = CURRENT_DATE) FROM mt5_trade_orders
                WHERE account_id = %(account)s AND status = 'closed' AND close_time >= CURRENT_DATE""",
    "quote": """SELECT bid, ask, spread, time FROM mt5_broker_quotes WHERE account_id = %(account)s
                 AND symbol = 'EURUSD' ORDER BY time DESC LIMIT 1""",
    "order": """SELECT * FROM mt5_trade_orders WHERE tenant_id = %(tenant)s AND account_id = %(account)s
                 AND ticket = %(ticket)s ORDER BY order_id LIMIT 1 FOR UPDATE""",
    "chain": """SELECT row_hash, chain_seq FROM mt5_audit_log WHERE tenant_id IS NOT DISTINCT FROM %(tenant)s
                 AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1""",
}
NOW = {
    "order": """SELECT * FROM mt5_trade_orders WHERE tenant_id = %(tenant)s AND account_id = %(account)s
                 AND ticket = %(ticket)s AND time = %(time)s ORDER BY order_id LIMIT 1 FOR UPDATE""",
}
LABELS = {
    "loss": "the risk gate's daily loss, per signal POST",
    "quote": "an account's latest broker quote on a cache miss, per signal POST",
    "order": "a trade event's order lookup (locked)",
    "chain": "an audit row's chain head (every audited action)",
}


def _median_ms(fn) -> float:
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _read(tenant_id, sql: str, params) -> None:
    from suho.tenancy import tenant_context

    with tenant_context(tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(sql, params)
        cursor.fetchall()
        transaction.set_rollback(True)  # the locking read holds nothing afterwards


def _parts(conn, table: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [table]
    ).fetchone()[0]  # fmt: skip


def measure() -> dict:
    import binproto as bp
    from bench import fixtures
    from quotes.selectors import quote_latest_rows
    from signals.selectors import account_loss_figures_statement
    from suho.timeseries import partitions_upkeep, timescale_enabled
    from trading.connection import ea_session_claim
    from trading.ingest import trade_event_record

    if not timescale_enabled(connections["owner"]):  # the plain path's partitions, as upkeep made them over the year
        now = timezone.now()
        for days_back in [*range(DAYS + 1, QUOTE_DAYS, -20), *range(QUOTE_DAYS + 1, 0, -2)]:
            partitions_upkeep(now=now - timedelta(days=days_back))
    ea = fixtures.eas_create(count=1, prefix="aged")[0]
    tenant, account = UUID(str(ea.tenant_id)), UUID(str(ea.account_id))
    params = {"tenant": str(tenant), "account": str(account)}
    started = time.perf_counter()
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        for statement in HISTORY:
            conn.execute(statement, params if "%(" in statement else None)
        parts = {table: _parts(conn, table) for table in ("mt5_trade_orders", "mt5_audit_log", "mt5_broker_quotes")}
        ticket, opened = conn.execute(
            "SELECT ticket, time FROM mt5_trade_orders WHERE account_id = %s ORDER BY time DESC LIMIT 1", [account]
        ).fetchone()
    history_s = time.perf_counter() - started

    order = {**params, "ticket": ticket}
    quote_rows = quote_latest_rows(account_id=account, symbol="EURUSD", since=timezone.now() - timedelta(seconds=10))
    quote_sql, quote_params = quote_rows[:1].query.sql_with_params()
    loss_sql, loss_params = account_loss_figures_statement(account_id=account)
    reads = {
        "loss": (_median_ms(lambda: _read(tenant, BEFORE["loss"], params)),
                 _median_ms(lambda: _read(tenant, loss_sql, loss_params))),
        "quote": (_median_ms(lambda: _read(tenant, BEFORE["quote"], params)),
                  _median_ms(lambda: _read(tenant, quote_sql, quote_params))),
        "order": (_median_ms(lambda: _read(tenant, BEFORE["order"], order)),
                  _median_ms(lambda: _read(tenant, NOW["order"], {**order, "time": opened}))),
        "chain": (_median_ms(lambda: _read(tenant, BEFORE["chain"], params)), None),
    }  # fmt: skip

    session = fixtures._session_ids[str(account)]
    claim_ms = _median_ms(lambda: ea_session_claim(tenant_id=tenant, account_id=account, session_id=session,
                                                   node="bench-aged"))  # fmt: skip
    events: dict[str, list[float]] = {"open": [], "modify": [], "close": []}
    for n in range(REPEAT):
        now_us = time.time_ns() // 1000
        number = 800_000 + n
        steps = {
            "open": bp.TradeOpened(event_seq=3 * n + 1, ticket=number, order_type=bp.OrderType.BUY, volume=0.1,
                                   price=1.1, stop_loss=1.09, take_profit=1.12, signal_id=None, open_time_us=now_us,
                                   commission=0.0, magic=0, symbol="EURUSD", timestamp_us=now_us),
            "modify": bp.TradeModified(event_seq=3 * n + 2, ticket=number, order_type=bp.OrderType.BUY, volume=0.1,
                                       price=1.1, stop_loss=1.095, take_profit=1.12, signal_id=None,
                                       modify_time_us=now_us + 1, symbol="EURUSD", timestamp_us=now_us + 1),
            "close": bp.TradeClosed(event_seq=3 * n + 3, ticket=number, order_type=bp.OrderType.BUY, volume=0.1,
                                    open_price=1.1, close_price=1.11, stop_loss=1.095, take_profit=1.12,
                                    signal_id=None, open_time_us=now_us, close_time_us=now_us + 2, profit=10.0,
                                    commission=0.0, swap=0.0, close_reason=bp.CloseReason.MANUAL, symbol="EURUSD",
                                    timestamp_us=now_us + 2),
        }  # fmt: skip
        for kind, event in steps.items():
            started = time.perf_counter()
            trade_event_record(tenant_id=tenant, account_id=account, session_id=None, event=event)
            events[kind].append((time.perf_counter() - started) * 1000)
    return {
        "parts": parts,
        "history_s": history_s,
        "reads": reads,
        "claim_ms": claim_ms,
        "trade_event_ms": {kind: statistics.median(samples) for kind, samples in events.items()},
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def rows(side: dict) -> list[tuple[str, str]]:
    """(figure, cell) for one database's measurement."""
    out = []
    for key, label in LABELS.items():
        before, now = side["reads"][key]
        out.append(
            (label, f"{_ms(now)} (unbounded: {_ms(before)})" if now is not None else f"read gone ({_ms(before)})")
        )
    out.append(("a HELLO's claim (one statement, audits the connect)", _ms(side["claim_ms"])))
    for kind, ms in side["trade_event_ms"].items():
        out.append((f"a trade event, whole: {kind}", _ms(ms)))
    return out


def note(sides: list[dict]) -> str:
    counts = "; ".join(
        ", ".join(f"{table} {count}" for table, count in side["parts"].items()) for side in sides
    )  # fmt: skip
    return (
        f"History: one account of its own, an order a day for {DAYS} days, {AUDIT_PER_DAY} audit rows a day for its "
        f"tenant as long, a broker quote every 30 minutes for {QUOTE_DAYS} days (partitions or chunks per table, in "
        f"the columns' order: {counts}). Each cell is the read as the code makes it now, then in the form it had "
        "before decisions 0004 and 0029 (unbounded: no time in it), as the service role in the tenant's context, "
        f"median of {REPEAT}; the audit chain's head is now a row of its own (no read of the log: 'read gone'). The "
        "claim and the trade events are the code paths, timed whole."
    )
