"""Balance rollup (issue 9 item 6): one account's "last 24 h of balance" and "weekly average" from the 5-minute
rollup (`mt5_balance_5min`) vs the raw history (`mt5_account_balance_history`), as the app runs them.

The raw table holds the issue's 10 million rows: `ACCOUNTS` accounts (100 to a tenant, as every bench account) × 7
days at the EA's 30-second cadence, in time order with the accounts interleaved, as live EAs write them (so one
account's rows are spread over the heap, not packed together). The day partitions for the week are made first with
the app's own `partitions_upkeep` (as the daily task would have made them; otherwise the week would land in the
default partition). The rows are generated in PostgreSQL (`generate_series`) as the administrator, in `CHUNKS`
slices of the time range over `GENERATORS` parallel connections, with foreign-key triggers off
(`session_replication_role = replica`: the accounts exist) and asynchronous commit; the indexes are kept, as live.
The rollup is filled by the app's `balance_rollup_refresh` over the whole week (timed). Each query runs as the
service role under the account's tenant context (row-level security on), `QUERY_REPEAT` times per run; the figure is
the median time, the spread over runs.
"""

from __future__ import annotations

import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
from django.db import connections
from django.utils import timezone

from bench.stack import admin_dsn
from bench.stats import spread

ACCOUNTS = 500
DAYS = 7
CADENCE_S = 30
CHUNKS = 14  # slices of the time range, each one INSERT…SELECT
GENERATORS = 2  # parallel connections (the machine's cores)
ISSUE_ROWS = 10_000_000
QUERY_REPEAT = 15
SEED_CLAIMS = {"last_24h": 57, "weekly_average": 72}

# n counts 30-second steps back from `now`; a slice is n from hi down to lo, oldest first, every account per step. One
# series r walks (step, account) in that order, so no sort is needed (the hash join keeps its probe side's order).
# The values come from one day's wave computed once (`wave`): computing four numerics per row costs 40 % of the insert.
GENERATE = """
WITH wave AS MATERIALIZED (
    SELECT k, (10000 + 50 * sin(k / 200.0::float8))::numeric(20, 2) AS balance,
           (10000 + 60 * sin(k / 150.0::float8))::numeric(20, 2) AS equity,
           (9000 + 100 * cos(k / 300.0::float8))::numeric(14, 2) AS margin_level,
           (10 * sin(k / 50.0::float8))::numeric(20, 2) AS floating_pnl
    FROM generate_series(0, 2879) AS k
)
INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance, equity, margin, free_margin,
    margin_level, floating_pnl, open_positions, pending_orders, daily_pnl, drawdown, max_balance)
SELECT %(now)s - step.n * interval '30 seconds', (%(tenants)s::uuid[])[step.i], (%(accounts)s::uuid[])[step.i],
       wave.balance, wave.equity, 100, 9900, wave.margin_level, wave.floating_pnl, 1, 0, 0, 0.5, 10150
FROM generate_series(0, (%(hi)s - %(lo)s + 1) * %(count)s - 1) AS r,
     LATERAL (SELECT %(hi)s - r / %(count)s AS n, r %% %(count)s + 1 AS i) AS step
     JOIN wave ON wave.k = (step.n + step.i * 97) %% 2880
"""
GENERATE_SESSION = (
    "SET session_replication_role = replica",
    "SET synchronous_commit = off",
    "SET enable_mergejoin = off",  # a merge join would sort the rows out of time order
    "SET jit = off",  # the join's row estimate is far off, and compiling costs more than it saves here
)

QUERIES = {
    "last_24h": (
        "SELECT time, balance, equity FROM mt5_account_balance_history"
        " WHERE account_id = %s AND time >= now() - interval '24 hours' ORDER BY time",
        "SELECT bucket, balance, equity FROM mt5_balance_5min"
        " WHERE account_id = %s AND bucket >= now() - interval '24 hours' ORDER BY bucket",
    ),
    "weekly_average": (
        "SELECT avg(balance), avg(equity) FROM mt5_account_balance_history"
        " WHERE account_id = %s AND time >= now() - interval '7 days'",
        "SELECT avg(balance), avg(equity) FROM mt5_balance_5min"
        " WHERE account_id = %s AND bucket >= now() - interval '7 days'",
    ),
}
LABELS = {"last_24h": 'one account\'s "last 24 h of balance"', "weekly_average": 'one account\'s "weekly average"'}


def _timed_ms(tenant_id: str, sql: str, account_id: str) -> float:
    from suho.tenancy import tenant_context

    samples = []
    for _ in range(QUERY_REPEAT):
        started = time.perf_counter()
        with tenant_context(tenant_id), connections["default"].cursor() as cursor:
            cursor.execute(sql, [account_id])
            cursor.fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _generate(now, lo: int, hi: int, tenants: list[str], accounts: list[str]) -> int:
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        for statement in GENERATE_SESSION:
            conn.execute(statement)
        params = {"now": now, "lo": lo, "hi": hi, "count": len(accounts), "tenants": tenants, "accounts": accounts}
        return conn.execute(GENERATE, params).rowcount


def run(*, eas: list, runs: int, accounts: int = ACCOUNTS) -> dict:
    """`accounts` × DAYS of raw rows (bench.paths measures both databases on fewer)."""
    from bench import fixtures
    from suho.timeseries import partitions_upkeep
    from trading.services import balance_rollup_refresh

    if len(eas) < accounts:  # `--only rollup` makes only a few
        eas = eas + fixtures.eas_create(count=accounts - len(eas), prefix="rollup")
    accounts = eas[:accounts]
    per_account = DAYS * 86_400 // CADENCE_S
    now = timezone.now().replace(microsecond=0)
    started = time.perf_counter()
    for days_back in range(DAYS + 1, 0, -4):  # each call makes its day's partition and the next ones ahead
        partitions_upkeep(now=now - timedelta(days=days_back))
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("TRUNCATE mt5_account_balance_history, mt5_balance_5min")  # earlier sections' EAs wrote some
    step = math.ceil(per_account / CHUNKS)
    tenants, account_ids = [ea.tenant_id for ea in accounts], [ea.account_id for ea in accounts]
    with ThreadPoolExecutor(GENERATORS) as pool:
        slices = [(lo, min(lo + step, per_account) - 1) for lo in range(0, per_account, step)]
        rows = sum(
            done.result()
            for done in [pool.submit(_generate, now, lo, hi, tenants, account_ids) for lo, hi in reversed(slices)]
        )
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("ANALYZE mt5_account_balance_history")  # autovacuum's job on a live table
        in_default = None  # TimescaleDB: chunks, no default partition
        if conn.execute("SELECT to_regclass('mt5_account_balance_history_default')").fetchone()[0]:
            in_default = conn.execute("SELECT count(*) FROM mt5_account_balance_history_default").fetchone()[0]
    analyze_s = time.perf_counter() - started
    started = time.perf_counter()
    buckets = balance_rollup_refresh(start=now - timedelta(days=DAYS, minutes=10), end=now + timedelta(minutes=5))
    rollup_s = time.perf_counter() - started
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("ANALYZE mt5_balance_5min")
    probe = accounts[len(accounts) // 2]
    figures: dict[str, dict[str, list[float]]] = {name: {"raw": [], "rollup": []} for name in QUERIES}
    for _ in range(runs):
        for name, (raw_sql, rollup_sql) in QUERIES.items():
            figures[name]["raw"].append(_timed_ms(probe.tenant_id, raw_sql, probe.account_id))
            figures[name]["rollup"].append(_timed_ms(probe.tenant_id, rollup_sql, probe.account_id))
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("TRUNCATE mt5_account_balance_history, mt5_balance_5min")
    return {
        "rows": rows,
        "in_default": in_default,
        "accounts": len(accounts),
        "per_account": per_account,
        "generate_s": generate_s,
        "analyze_s": analyze_s,
        "buckets": buckets,
        "rollup_s": rollup_s,
        "figures": figures,
    }


def _layout(result: dict) -> str:
    if result["in_default"] is None:
        return "in TimescaleDB chunks"
    return f"in day partitions ({result['in_default']:,} rows in the default one)"


def _ratios(result: dict, name: str) -> dict:
    f = result["figures"][name]
    return spread([raw / rollup for raw, rollup in zip(f["raw"], f["rollup"], strict=True)])


def targets(result: dict) -> list[tuple[str, str, str, bool | None]]:
    return [
        (
            f"Rollup vs raw: {LABELS[name]} ({result['rows']:,} raw rows)",
            f"{_ratios(result, name)['median']:.0f}×",
            f"seed claims {claim}×",
            None,
        )
        for name, claim in SEED_CLAIMS.items()
    ]


def markdown(result: dict) -> str:
    lines = ["| query | raw history | 5-minute rollup | raw / rollup | seed §9.1 |", "|---|---:|---:|---:|---:|"]
    for name, claim in SEED_CLAIMS.items():
        f = result["figures"][name]
        raw, rollup, ratio = spread(f["raw"]), spread(f["rollup"]), _ratios(result, name)
        lines.append(
            f"| {LABELS[name]} | {raw['median']:.2f} ms ({raw['min']:.2f}–{raw['max']:.2f}) | "
            f"{rollup['median']:.2f} ms ({rollup['min']:.2f}–{rollup['max']:.2f}) | "
            f"{ratio['median']:.0f}× ({ratio['min']:.0f}–{ratio['max']:.0f}) | {claim}× |"
        )
    runs = len(result["figures"]["last_24h"]["raw"])
    lines += [
        "",
        f"Raw table: {result['rows']:,} rows = {result['accounts']} accounts × {DAYS} days at the EA's "
        f"{CADENCE_S}-second cadence ({result['per_account']:,} rows per account), time-ordered with the accounts "
        f"interleaved as live EAs write them, {_layout(result)}; "
        f"generated in {result['generate_s']:.0f} s ({GENERATORS} connections, indexes kept) and analyzed in "
        f"{result['analyze_s']:.0f} s. `balance_rollup_refresh` (the app's task function) over the whole week wrote "
        f"{result['buckets']:,} buckets in {result['rollup_s']:.0f} s; its 5-minute run covers one hour. "
        f"Each query {QUERY_REPEAT}× per run (median) as the service role under the account's tenant context "
        f"(row-level security on); {runs} run{'s' * (runs != 1)}, min–max in brackets.",
        "",
        "Why not the seed's 57× and 72×: the seed's raw queries take 2.3 s and 8.7 s, i.e. they scan far more than "
        "one account's rows. Here both raw queries read only that account's rows through the (tenant, account, time) "
        "index, so the rollup's gain is bounded by the rows it saves: at a 30-second cadence a 5-minute bucket "
        "replaces 10 raw rows. The 24-hour list returns 2,880 rows vs 288 to the application, and the row transfer "
        "dominates both; the weekly average reads 20,160 rows on as many heap pages (other accounts' rows sit in "
        "between) vs 2,016 contiguous rollup rows, so it gains more. A denser feed (more rows per bucket) or a raw "
        "query without the index would give a larger ratio.",
    ]
    return "\n".join(lines) + "\n"
