"""Cache hit ratios (issue 9 item 7) for the latest quote, balance and positions under a simulated EA workload.

`EAS` EAs on a real daphne behave as docs/protocol.md §6 says: on connect they send ACCOUNT_FINANCE and POSITIONS,
then price packets (8 symbols) at `FPS`, ACCOUNT_FINANCE and HEARTBEAT every 30 s, and POSITIONS "on change",
which stands here for a trade-active EA whose positions change once every `POSITIONS_S`. Each account has the one
open order its EA reports (ticket 123456789) in the database, as trade events would have recorded it. After a
warm-up of one FINANCE period (every key has been refreshed by its periodic send at least once), this process reads
through the app's selectors — `quote_latest`, `balance_latest`, `positions_open`, under the account's tenant
context — for random accounts, `READS_PER_S` of each, and counts an answer as a hit only when its `source` is the
cache. TTLs: quote 5 s, balance 30 s, positions 10 s (suho.cache). `positions_open` reads through: a miss loads the
open orders and fills the key for the TTL.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from bench import ea_load
from bench.stack import Daphne, LoadProcess, admin_dsn
from bench.stats import met

EAS = 200
FPS = 2
POSITIONS_S = 60
WARMUP_S = 30  # every EA has sent its first periodic FINANCE (random phase in 30 s): steady state
READ_S = 20
READS_PER_S = 100
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD", "XAUUSD")
SEED_CLAIMS = {"quote": 0.95, "balance": 0.90, "positions": 0.85}


def _open_orders_create(accounts: list) -> None:
    """The position every bench EA reports (bench.ea_load.positions), as an open order in the database."""
    from django.utils import timezone

    from suho.routers import operator_path
    from trading.models import TradeOrder

    p = ea_load.positions().positions[0]
    opened = timezone.now() - timedelta(hours=1)
    with operator_path():
        TradeOrder.objects.bulk_create(
            TradeOrder(time=opened, tenant_id=ea.tenant_id, account_id=ea.account_id, ticket=p.ticket,
                       symbol=p.symbol, order_type=p.order_type.name.lower(), volume=Decimal(repr(p.volume)),
                       open_price=Decimal(repr(p.open_price)), stop_loss=Decimal(repr(p.stop_loss)),
                       take_profit=Decimal(repr(p.take_profit)))
            for ea in accounts
        )  # fmt: skip


def _open_orders_delete(accounts: list) -> None:
    """As the administrator: the app roles may not delete time-series rows (decision 0014)."""
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM mt5_trade_orders WHERE account_id = ANY (%s)", [[ea.account_id for ea in accounts]])


def run(*, eas: list, log_dir: Path) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from quotes.selectors import quote_latest
    from suho.tenancy import tenant_context
    from trading.selectors import balance_latest, positions_open

    accounts = eas[:EAS]
    _open_orders_create(accounts)
    daphne = Daphne(log_dir, name="cache")
    loads: list[LoadProcess] = []
    hits = {kind: 0 for kind in SEED_CLAIMS}
    reads = 0
    try:
        for k in range(2):
            config = {
                "url": daphne.url,
                "eas": [ea.as_dict() for ea in accounts[k::2]],
                "fps": FPS,
                "finance_s": 30,
                "heartbeat_s": 30,
                "positions_s": POSITIONS_S,
                "on_connect": True,
                "seed": 1000 * k,
            }
            loads.append(LoadProcess(config, log_dir, f"cache-load{k}"))
        for load in loads:
            load.event(120)
        time.sleep(WARMUP_S)
        deadline = time.monotonic() + READ_S
        due = time.monotonic()
        while time.monotonic() < deadline and reads < READ_S * READS_PER_S:
            ea = random.choice(accounts)
            with tenant_context(ea.tenant_id):
                since = timezone.now() - timedelta(seconds=settings.SIGNAL_MAX_QUOTE_AGE_S)  # as the intake reads it
                quote = quote_latest(account_id=ea.account_id, symbol=random.choice(SYMBOLS), since=since)
                balance = balance_latest(account_id=ea.account_id)
                positions = positions_open(account_id=ea.account_id)
            hits["quote"] += bool(quote and quote["source"] == "cache")
            hits["balance"] += bool(balance and balance["source"] == "cache")
            hits["positions"] += positions["source"] == "cache"
            reads += 1
            due += 1 / READS_PER_S
            time.sleep(max(0.0, due - time.monotonic()))
        results = [load.stop() for load in loads]
    finally:
        for load in loads:
            load.kill()
        daphne.stop()
        _open_orders_delete(accounts)
    return {
        "reads": reads,
        "ratios": {kind: n / max(reads, 1) for kind, n in hits.items()},
        "closed": [r["closed"] for r in results if r["closed"]],
    }


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    return [
        (
            f"Cache hit ratio: {kind}",
            f"{result['ratios'][kind]:.1%}",
            f"seed §9.3: {claim:.0%}",
            result["ratios"][kind] >= claim,
        )
        for kind, claim in SEED_CLAIMS.items()
    ]


def markdown(result: dict) -> str:
    lines = ["| latest value | TTL | hit ratio | seed §9.3 | met |", "|---|---:|---:|---:|---|"]
    ttl = {"quote": "5 s", "balance": "30 s", "positions": "10 s"}
    for kind, claim in SEED_CLAIMS.items():
        ratio = result["ratios"][kind]
        lines.append(f"| {kind} | {ttl[kind]} | {ratio:.1%} | {claim:.0%} | {met(ratio >= claim)} |")
    lines += [
        "",
        f"Workload: {EAS} EAs, {FPS} price packets/s each (8 symbols), ACCOUNT_FINANCE and HEARTBEAT every 30 s, "
        f'POSITIONS on connect and then every {POSITIONS_S} s ("on change": a trade-active EA); {result["reads"]:,} '
        f"reads of each kind for random accounts over {READ_S} s after a {WARMUP_S} s warm-up (one run), about one "
        f"read of each kind per account every {EAS * READ_S / max(result['reads'], 1):.1f} s. "
        "A hit is an answer whose source is Redis. "
        "The quote is refreshed far more often than its 5 s TTL; the balance arrives every 30 s against a 30 s TTL "
        "that starts when its batch is written, so a key lapses only when the next write lands later after its send "
        "than the previous one did (flush jitter). Positions change far less often than their 10 s TTL, so the EA's "
        "snapshot has usually expired: `positions_open` reads through (a miss loads the open orders from the "
        "database and fills the key for 10 s), and its ratio is set by how often an account is read: for a key the "
        "EA does not refresh, about 1 − 1/(1 + 10 s × reads per second of that account); an account read every "
        "few minutes would miss nearly every time. "
        f"Connections closed by the server: {result['closed'] or 'none'}.",
    ]
    return "\n".join(lines) + "\n"
