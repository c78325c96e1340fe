"""On a cache miss the latest broker quote is read only within the caller's window (the intake: the quote age it
accepts), so PostgreSQL plans only the partitions (TimescaleDB: chunks) of that window: the table keeps 90 days in
30-minute chunks, and the unbounded read planned all of them on every miss, an EA that stopped streaming."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone
from factories import make_account, make_tenant, make_user

from quotes.models import BrokerQuote
from quotes.selectors import quote_latest, quote_latest_rows
from suho.cache import cache_client, quote_key
from suho.routers import OWNER, SERVICE
from suho.tenancy import tenant_context
from suho.timeseries import timescale_enabled
from tests.chunks import old_partitions_create
from tests.signals.test_loss_figures_partitions import _planned_tables

ALL = pytest.mark.django_db(databases=["default", "owner", "operator"])
OLD_PARTS = 30
WINDOW = timedelta(seconds=10)


@pytest.fixture
def account():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    cache_client().delete(quote_key(account.pk, "EURUSD"))
    return account


def quote(account, at, bid="1.09500") -> None:
    with tenant_context(account.tenant_id):
        BrokerQuote.objects.create(
            time=at, tenant_id=account.tenant_id, account=account, symbol="EURUSD", bid=Decimal(bid),
            ask=Decimal(bid) + Decimal("0.0002"), spread=Decimal(20),
        )  # fmt: skip


def plan(cursor, account) -> set[str]:
    sql, params = quote_latest_rows(account_id=account.pk, symbol="EURUSD", since=timezone.now() - WINDOW)[
        :1
    ].query.sql_with_params()
    cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    raw = cursor.fetchone()[0]
    return _planned_tables((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])


@ALL
def test_a_quote_older_than_the_window_is_not_read(account):
    quote(account, timezone.now() - timedelta(minutes=3), bid="1.09100")
    with tenant_context(account.tenant_id):
        assert quote_latest(account_id=account.pk, symbol="EURUSD", since=timezone.now() - WINDOW) is None
        found = quote_latest(account_id=account.pk, symbol="EURUSD", since=timezone.now() - timedelta(minutes=5))
    assert (found["source"], found["bid"]) == ("database", 1.091)
    quote(account, timezone.now(), bid="1.09600")
    with tenant_context(account.tenant_id):
        assert quote_latest(account_id=account.pk, symbol="EURUSD", since=timezone.now() - WINDOW)["bid"] == 1.096


@ALL
def test_the_planner_reads_no_quote_partition_older_than_the_window(account):
    """Fails with the unbounded read: every old partition would be in the plan."""
    owner = connections[OWNER]
    if timescale_enabled(owner):
        pytest.skip("TimescaleDB: chunks, checked by the next test")
    with transaction.atomic(using=OWNER), owner.cursor() as cursor:  # the partitions are rolled back
        old = old_partitions_create(cursor, "mt5_broker_quotes", OLD_PARTS)
        planned = plan(cursor, account)
        transaction.set_rollback(True, using=OWNER)
    quotes = {table for table in planned if table.startswith("mt5_broker_quotes")}
    assert quotes and not quotes & set(old), sorted(quotes)


def test_on_timescaledb_the_planner_reads_no_quote_chunk_older_than_the_window(committed, account):
    owner = connections[OWNER]
    if not timescale_enabled(owner):
        pytest.skip("the plain path: its partitions are checked by the test above")
    oldest = timezone.now() - timedelta(days=2)
    for half_hour in range(OLD_PARTS):  # a row half an hour apart: a chunk each
        quote(account, oldest + timedelta(minutes=30 * half_hour))
    with owner.cursor() as cursor:
        cursor.execute(
            "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'mt5_broker_quotes'"
            " AND range_end <= %s",
            [oldest + timedelta(minutes=30 * OLD_PARTS + 30)],
        )
        old = {row[0] for row in cursor.fetchall()}
    with transaction.atomic(using=SERVICE), tenant_context(account.tenant_id), connections[SERVICE].cursor() as cursor:
        planned = plan(cursor, account)
    assert len(old) >= OLD_PARTS and not planned & old, sorted(planned & old)
