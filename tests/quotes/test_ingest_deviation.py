"""Broker ticks are stored with the reference mid of the same instant and their deviation from it (seed §6.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DataError, connections
from django.test.utils import CaptureQueriesContext
from factories import make_account, make_tenant, make_user

from quotes.ingest import (
    COPY_MIN_ROWS,
    INSERT_QUOTES,
    INSERT_QUOTES_STAGED,
    REFERENCE_MAX_AGE_S,
    TickRow,
    broker_quotes_insert,
)
from quotes.models import BrokerQuote, ReferenceQuote
from suho.routers import SERVICE
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def tick(account, at: datetime, bid: float, ask: float, symbol: str = "EURUSD") -> TickRow:
    return TickRow(int(at.timestamp() * 1_000_000), str(account.tenant_id), str(account.pk), symbol, bid, ask,
                   20.0, 100, True, "london", True)  # fmt: skip


def reference(at: datetime, bid: str, ask: str, symbol: str = "EURUSD") -> None:
    ReferenceQuote.objects.create(time=at, symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), source="replay")


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def stored(account) -> list[tuple]:
    with tenant_context(account.tenant_id):
        return list(
            BrokerQuote.objects.order_by("time", "symbol").values_list(
                "symbol", "polygon_mid_price", "price_deviation", "deviation_percent"
            )
        )


def test_each_tick_is_compared_with_the_reference_quote_of_its_own_instant(account):
    reference(T0, "1.09490", "1.09510")  # mid 1.0950
    reference(T0 + timedelta(seconds=1), "1.09500", "1.09520")  # mid 1.0951
    reference(T0 + timedelta(seconds=3), "1.09600", "1.09620")  # later than every tick: never used

    broker_quotes_insert([
        tick(account, T0 + timedelta(milliseconds=500), 1.0951, 1.0953),  # mid 1.0952 vs 1.0950
        tick(account, T0 + timedelta(seconds=2), 1.0950, 1.0952),  # mid 1.0951 vs 1.0951
    ])  # fmt: skip

    assert stored(account) == [
        ("EURUSD", Decimal("1.09500000"), Decimal("0.00020000"), Decimal("0.018265")),
        ("EURUSD", Decimal("1.09510000"), Decimal("0.00000000"), Decimal("0.000000")),
    ]


def test_a_broker_suffix_is_ignored_and_a_stale_or_missing_reference_leaves_the_columns_empty(account):
    reference(T0, "149.100", "149.120", symbol="USDJPY")
    broker_quotes_insert([
        tick(account, T0 + timedelta(seconds=1), 149.13, 149.15, symbol="USDJPY.m"),
        tick(account, T0 + timedelta(seconds=REFERENCE_MAX_AGE_S + 1), 149.13, 149.15, symbol="USDJPY.m"),
        tick(account, T0 + timedelta(seconds=1), 1.2650, 1.2652, symbol="GBPUSD"),
    ])  # fmt: skip
    rows = stored(account)
    assert rows[0] == ("GBPUSD", None, None, None), "no GBPUSD reference at all"
    assert rows[1] == ("USDJPY.m", Decimal("149.11000000"), Decimal("0.03000000"), Decimal("0.020119"))
    assert rows[2] == ("USDJPY.m", None, None, None), "the only reference is older than the limit"


def test_large_groups_are_copied_and_small_ones_unnested_each_row_stored_once_and_priced_alike():
    """A tenant's group of COPY_MIN_ROWS or more goes through COPY into a temporary table; two such groups in one
    batch (the second must not take the first's rows again), one small group between them, and a second batch."""
    big_a, small, big_b = (make_account(tenant, make_user(tenant)) for tenant in (make_tenant() for _ in range(3)))
    reference(T0, "1.09490", "1.09510")  # mid 1.0950
    sizes = {big_a: COPY_MIN_ROWS, small: 1, big_b: COPY_MIN_ROWS + 5}
    batch = [tick(account, T0 + timedelta(microseconds=i), 1.0951, 1.0953)
             for account, size in sizes.items() for i in range(size)]  # fmt: skip
    with CaptureQueriesContext(connections[SERVICE]) as queries:
        broker_quotes_insert(batch)
    statements = [q["sql"] for q in queries.captured_queries]
    assert sum(sql.startswith(INSERT_QUOTES_STAGED[:40]) for sql in statements) == 2
    assert sum(sql.startswith(INSERT_QUOTES[:60]) and "unnest" in sql for sql in statements) == 1
    broker_quotes_insert([tick(big_a, T0 + timedelta(seconds=1), 1.0951, 1.0953)] * COPY_MIN_ROWS)
    sizes[big_a] += COPY_MIN_ROWS
    for account, size in sizes.items():
        assert stored(account) == [("EURUSD", Decimal("1.09500000"), Decimal("0.00020000"), Decimal("0.018265"))] * size


@pytest.mark.parametrize(
    "bad",
    [
        {"quote_quality": 70_000},  # psycopg's binary smallint would wrap it to 4464
        {"quote_quality": 2**63},  # no binary integer holds it
        {"time_us": 2**63},
        {"bid": 10**400},  # an int no float8 holds
        {"ask": "1.1"},  # not a number at all
    ],
)
def test_a_large_group_with_a_value_its_column_cannot_hold_is_refused_whole_as_a_data_error(account, bad):
    """Rows reach the data bridge as JSON, so a value can be anything: the binary COPY must refuse it as PostgreSQL
    refused it in text (DataError: the batcher isolates the row, the bridge skips the batch), never store another."""
    rows = [tick(account, T0 + timedelta(microseconds=i), 1.0951, 1.0953) for i in range(COPY_MIN_ROWS)]
    rows[7] = rows[7]._replace(**bad)
    with pytest.raises(DataError):
        broker_quotes_insert(rows)
    assert stored(account) == []
