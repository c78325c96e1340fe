"""The gateway's outbound bookkeeping, one batch after another in this process: the CPU and wall time of
`trading.outbound_batch.outbound_bookkeeping_apply` for a batch like a 250 ms flush at 60 % of the signal POST
capacity (15 signals of random accounts among 1,000 in 10 tenants, a SENT mark and an ACK each). Steadier than a
latency on a shared machine: run it alternately on two versions of the code (docs/decisions/0038).

    .venv/bin/python -m suho.devstack exec -- .venv/bin/python -m bench.outbound_bookkeeping [--batches 150]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import timedelta

ACCOUNTS = 1_000
SIGNALS_PER_BATCH = 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=150)
    args = parser.parse_args()

    from bench.stack import admin_dsn, bench_env

    bench_env()
    import django

    django.setup()
    import psycopg
    from django.utils import timezone

    import binproto
    from bench import fixtures
    from signals.models import TradingSignal
    from suho.tenancy import tenant_context
    from trading.outbound_batch import SIGNAL_ACK, SIGNAL_SENT, OutboundRow, outbound_bookkeeping_apply

    fixtures.database_create()
    eas = fixtures.eas_create(count=ACCOUNTS)
    picker = random.Random(1)

    def signal_of(ea) -> tuple:
        now = timezone.now()
        with tenant_context(ea.tenant_id):
            signal = TradingSignal.objects.create(
                time=now, tenant_id=ea.tenant_id, account_id=ea.account_id, symbol="EURUSD", action="BUY",
                entry_price=1.0953, entry_price_min=1.0951, entry_price_max=1.0955, volume=0.1,
                valid_until=now + timedelta(minutes=5),
            )  # fmt: skip
        return ea, signal.signal_id

    batches = [[signal_of(ea) for ea in picker.sample(eas, SIGNALS_PER_BATCH)] for _ in range(args.batches)]
    cpu, wall = [], []
    for batch in batches:
        rows = [
            OutboundRow(str(ea.tenant_id), kind, signal_id, timezone.now(), status, "", str(ea.account_id), 0)
            for kind, status in ((SIGNAL_SENT, None), (SIGNAL_ACK, binproto.AckStatus.RECEIVED))
            for ea, signal_id in batch
        ]
        cpu_at, wall_at = time.process_time(), time.perf_counter()
        outbound_bookkeeping_apply(rows)
        cpu.append(time.process_time() - cpu_at)
        wall.append(time.perf_counter() - wall_at)
    with psycopg.connect(admin_dsn()) as connection:
        done, total = connection.execute(
            "SELECT count(*) FILTER (WHERE status = 'sent' AND acked_at IS NOT NULL), count(*) FROM mt5_trading_signals"
        ).fetchone()
    tenants = statistics.mean(len({ea.tenant_id for ea, _ in batch}) for batch in batches)
    print(
        f"{args.batches} batches, {tenants:.1f} tenants each: CPU {statistics.median(cpu) * 1000:.2f} ms, "
        f"wall {statistics.median(wall) * 1000:.2f} ms per batch (medians); {done} of {total} signals SENT and "
        "acknowledged"
    )


if __name__ == "__main__":
    main()
