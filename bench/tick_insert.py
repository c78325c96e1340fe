"""PostgreSQL's CPU per 10,000 ticks in `quotes.ingest.broker_quotes_insert`, with the tick table's index as
migrated and with the two it replaced (decision 0032): the database side of ingest alone, no server, no load.

    python -m suho.devstack exec -- python -m bench.tick_insert [--batches 30]

Recreates the bench database (bench.fixtures), makes 200 accounts in 2 tenants, then inserts batches of 10,000
ticks (8 symbols, each tenant's half through the COPY path, as the gateway's 250 ms flush at 40,000 ticks/s) and
reads the CPU the service connection's backend used (/proc). Layouts alternate, three rounds, so a drift of the
machine's speed hits both alike; the table is emptied before each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import psutil
import psycopg

from bench.stack import admin_dsn, bench_env

LAYOUTS = {
    "one index (tenant, symbol, account, time)": [],
    "the two it replaced": [
        "DROP INDEX idx_quotes_symbol_acct_time",
        "CREATE INDEX idx_quotes_tenant_symbol_time ON mt5_broker_quotes (tenant_id, symbol, time DESC)",
        "CREATE INDEX idx_quotes_acct_symbol_time ON mt5_broker_quotes (tenant_id, account_id, symbol, time DESC)",
    ],
}
UNDO = [
    "DROP INDEX IF EXISTS idx_quotes_tenant_symbol_time",
    "DROP INDEX IF EXISTS idx_quotes_acct_symbol_time",
    "CREATE INDEX IF NOT EXISTS idx_quotes_symbol_acct_time"
    " ON mt5_broker_quotes (tenant_id, symbol, account_id, time DESC)",
]
ROWS = 10_000
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD.r", "AUDUSD", "USDCAD", "EURJPY", "NZDUSD"]


def _batch(accounts: list[tuple[str, str]], start_us: int) -> list[tuple]:
    rows = []
    for i in range(ROWS):
        tenant_id, account_id = accounts[i % len(accounts)]
        bid = 1.1 + random.random() / 100
        rows.append(
            (start_us + i, tenant_id, account_id, SYMBOLS[i % 8], bid, bid + 0.0001, 1.0, 3, True, "london", True)
        )
    return rows


def _backend_cpu_s() -> float:
    from django.db import connections

    from suho.routers import SERVICE

    connection = connections[SERVICE]
    connection.ensure_connection()
    times = psutil.Process(connection.connection.info.backend_pid).cpu_times()
    return times.user + times.system


def measure(accounts: list[tuple[str, str]], batches: int) -> float:
    """PostgreSQL CPU seconds per 10,000 ticks over `batches` inserts (one more first, not counted)."""
    from quotes.ingest import broker_quotes_insert

    start_us = time.time_ns() // 1000
    broker_quotes_insert(_batch(accounts, start_us))
    before = _backend_cpu_s()
    for n in range(1, batches + 1):
        broker_quotes_insert(_batch(accounts, start_us + n * ROWS))
    return (_backend_cpu_s() - before) / batches * 10_000 / ROWS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    bench_env()
    import django

    django.setup()
    from bench import fixtures

    fixtures.database_create()
    accounts = [(ea.tenant_id, ea.account_id) for ea in fixtures.eas_create(count=200)]
    figures: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    with psycopg.connect(admin_dsn(), autocommit=True) as admin:
        try:
            for _round in range(3):
                for name, statements in LAYOUTS.items():
                    for statement in ["TRUNCATE mt5_broker_quotes", *UNDO, *statements]:
                        admin.execute(statement)
                    figures[name].append(measure(accounts, args.batches))
        finally:
            for statement in UNDO:
                admin.execute(statement)
    for name, values in figures.items():
        print(f"{name}: {statistics.median(values):.3f} s per 10k ticks ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
