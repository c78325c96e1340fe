"""The risk gate's drawdown is the account's newest balance snapshot, read first within the last
BALANCE_SNAPSHOT_LOOKBACK so that PostgreSQL plans only the partitions that window covers (issue 21): two years of
daily partitions made every signal POST spend ~53 ms planning the unbounded read. A snapshot older than the window
is still found (a second read), so the figure is the same as before; an account no EA has ever connected for has
no snapshots, and is spared that read."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from factories import make_balance

from accounts.models import MT5Account
from signals.selectors import (
    BALANCE_SNAPSHOT_LOOKBACK,
    account_equity_latest,
    account_loss_figures,
    account_loss_figures_statement,
)
from signals.services import SignalSpec, signal_create
from signals.services import risk as gate
from suho.routers import OWNER, SERVICE, operator_path
from suho.tenancy import tenant_context
from suho.timeseries import timescale_enabled
from tests.accounts.helpers import account_make, tenant_make
from tests.chunks import old_partitions_create
from tests.signals.conftest import quote_put
from trading.selectors import balance_latest

OLD_PARTITIONS = 40


def _figures(account) -> tuple:
    with tenant_context(account.tenant_id):  # as the gate reads them
        return account_loss_figures(account=account)


def _spec() -> SignalSpec:
    return SignalSpec(symbol="EURUSD", action="BUY", volume=Decimal("0.1"), entry_price=Decimal("1.0952"),
                      stop_loss=Decimal("1.0932"), take_profit=Decimal("1.0982"))  # fmt: skip


def _connected_days_ago(account, days: int = 3):
    account.last_connected_at = timezone.now() - timedelta(days=days)
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(last_connected_at=account.last_connected_at)
    return account


def test_a_snapshot_older_than_the_window_still_sets_the_drawdown(account, published):
    _connected_days_ago(account)
    make_balance(account, time=timezone.now() - BALANCE_SNAPSHOT_LOOKBACK - timedelta(days=3), drawdown=Decimal("25"))
    quote_put(account)

    assert _figures(account) == (None, Decimal("25"))
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert (signal.status, signal.status_reason) == ("rejected", gate.RISK_DRAWDOWN.format(drawdown="25", limit="20"))


def test_the_newest_snapshot_wins_and_none_is_none(account, published):
    assert _figures(account) == (None, None)
    _connected_days_ago(account)
    assert _figures(account) == (None, None)
    make_balance(account, time=timezone.now() - timedelta(days=3), drawdown=Decimal("25"))
    make_balance(account, time=timezone.now() - timedelta(minutes=1), drawdown=Decimal("5"))
    quote_put(account)

    assert _figures(account) == (None, Decimal("5"))
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert signal.status == "pending"


def test_an_account_no_ea_ever_connected_for_is_not_read_past_the_window(account, published):
    """By design: snapshots come only from EA sessions, which set last_connected_at; an old row of an account
    without one (none exists outside tests) is not looked for, and a new account's signal costs no second read."""
    make_balance(account, time=timezone.now() - BALANCE_SNAPSHOT_LOOKBACK - timedelta(days=3), drawdown=Decimal("25"))
    assert _figures(account) == (None, None)
    assert _connected_days_ago(account) and _figures(account) == (None, Decimal("25"))


def _planned_tables(plan: dict) -> set[str]:
    tables = {plan["Relation Name"]} if "Relation Name" in plan else set()
    for child in plan.get("Plans", []):
        tables |= _planned_tables(child)
    return tables


def _loss_figures_plan(cursor, account) -> set[str]:
    """The tables and partitions (TimescaleDB: chunks) in the plan of the POST's loss-figures statement."""
    sql, params = account_loss_figures_statement(account_id=account.account_id)
    cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    raw = cursor.fetchone()[0]
    return _planned_tables((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])


def test_the_planner_reads_no_balance_partition_older_than_the_window(account):
    """Fails with the unbounded read: every old partition would be in the plan."""
    owner = connections[OWNER]
    if timescale_enabled(owner):
        pytest.skip("TimescaleDB: chunks, checked by the next test")
    with transaction.atomic(using=OWNER), owner.cursor() as cursor:  # the partitions are rolled back
        old = old_partitions_create(cursor, "mt5_account_balance_history", OLD_PARTITIONS)
        planned = _loss_figures_plan(cursor, account)
        transaction.set_rollback(True, using=OWNER)

    balance = {table for table in planned if table.startswith("mt5_account_balance_history")}
    assert balance and not balance & set(old), sorted(balance)


def test_on_timescaledb_the_planner_reads_no_chunk_older_than_the_window(account):
    """The deployment's database: one-hour chunks (seed §3.3), two years of them at full retention. Fails with the
    unbounded read: every old chunk would be in the plan."""
    owner = connections[OWNER]
    if not timescale_enabled(owner):
        pytest.skip("the plain path: its partitions are checked by the test above")
    oldest = timezone.now() - BALANCE_SNAPSHOT_LOOKBACK - timedelta(days=3)
    for hour in range(OLD_PARTITIONS):  # a row an hour apart: a chunk each
        make_balance(account, time=oldest + timedelta(hours=hour))
    make_balance(account, time=timezone.now())
    with owner.cursor() as cursor:
        cursor.execute(
            "SELECT chunk_name, range_end <= %s, range_start <= now() AND now() < range_end"
            " FROM timescaledb_information.chunks WHERE hypertable_name = %s",
            [oldest + timedelta(hours=OLD_PARTITIONS + 1), "mt5_account_balance_history"],
        )
        chunks = cursor.fetchall()
    old = {name for name, is_old, _current in chunks if is_old}
    current = {name for name, _old, is_current in chunks if is_current}
    with transaction.atomic(using=SERVICE), tenant_context(account.tenant_id), connections[SERVICE].cursor() as cursor:
        planned = _loss_figures_plan(cursor, account)

    assert len(old) >= OLD_PARTITIONS and current and current <= planned, sorted(planned)
    assert not planned & old, sorted(planned & old)


def test_risk_percent_sizing_finds_an_equity_older_than_the_window(committed):
    """The equity for risk-% sizing (the gateway's cache missed: the EA is offline) is read the same way."""
    account = _connected_days_ago(account_make(tenant_make(), sizing_method="risk_percent", risk_percent=Decimal("1")))
    quote_put(account)
    make_balance(account, time=timezone.now() - BALANCE_SNAPSHOT_LOOKBACK - timedelta(days=3), equity=Decimal("10000"))
    # 1 % of 10,000 = 100 USD over a 20-pip stop at 10 USD per pip per lot = 0.5 lots
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert (signal.status, signal.volume) == ("pending", Decimal("0.5000"))


def _heard_days_ago(account, days: int):
    """An EA last connected and heard from `days` ago (offline since)."""
    at = timezone.now() - timedelta(days=days)
    account.last_connected_at = account.last_heartbeat_at = at
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(last_connected_at=at, last_heartbeat_at=at)
    return at


def _bounded(sql: str) -> bool:
    """The statement reads balance history from a time on (the ORM quotes the column)."""
    return re.search(r'(\btime|"time")\s*>=', sql) is not None


def _balance_reads(account, read) -> tuple:
    """`read()`'s answer, and the balance-history statements it sent."""
    with CaptureQueriesContext(connections[SERVICE]) as queries, tenant_context(account.tenant_id):
        answer = read()
    return answer, [q["sql"] for q in queries.captured_queries if "mt5_account_balance_history" in q["sql"]]


def test_an_offline_accounts_snapshot_is_read_around_its_last_heartbeat_not_unbounded(account):
    """A broadcast reaches accounts whose EA has been offline for days: their snapshot is read from
    BALANCE_SNAPSHOT_LOOKBACK before the EA was last heard from, so only those partitions are planned; the
    unbounded read (every partition of two years) is not sent. Fails with the fallback before it: unbounded."""
    heard = _heard_days_ago(account, 5)
    make_balance(account, time=heard - timedelta(minutes=5), drawdown=Decimal("25"), equity=Decimal("9000"))
    (figures, sent) = _balance_reads(account, lambda: account_loss_figures(account=account))
    assert figures == (None, Decimal("25"))
    assert len(sent) == 2 and all(map(_bounded, sent)), sent
    equity, sent = _balance_reads(account, lambda: account_equity_latest(account=account))
    assert equity == Decimal("9000") and len(sent) == 2 and all(map(_bounded, sent)), sent
    balance, sent = _balance_reads(account, lambda: balance_latest(account_id=account.pk))
    assert (balance["source"], balance["equity"]) == ("database", 9000.0)
    assert len(sent) == 2 and all(map(_bounded, sent)), sent


def test_a_snapshot_older_than_the_ea_was_last_heard_is_still_found(account):
    """An EA that went on sending heartbeats but stopped reporting its finance: the unbounded read finds it."""
    heard = _heard_days_ago(account, 1)
    make_balance(account, time=heard - BALANCE_SNAPSHOT_LOOKBACK - timedelta(days=2), drawdown=Decimal("21"))
    assert _figures(account) == (None, Decimal("21"))
    with tenant_context(account.tenant_id):
        assert balance_latest(account_id=account.pk)["source"] == "database"
