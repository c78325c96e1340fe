"""The 5-minute balance rollup (`mt5_balance_5min`): same numbers as the raw table, and tenant-isolated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections
from factories import make_account, make_balance, make_tenant, make_user

from suho.schedules import BEAT_SCHEDULE
from suho.tenancy import tenant_context
from trading.models import BalanceRollup
from trading.services import balance_rollup_refresh
from trading.tasks import balance_rollup_refresh_task

OPERATOR = "operator"
NOW = datetime(2026, 3, 2, 12, 2, 30, tzinfo=UTC)  # 2 min 30 s into the 12:00 bucket

# The direct query: the latest raw row per account and bucket, found without last() or time_bucket().
DIRECT = """
SELECT DISTINCT ON (tenant_id, account_id, bucket)
       tenant_id, account_id, bucket, balance, equity
FROM (SELECT *, to_timestamp(floor(extract(epoch FROM time) / 300) * 300) AS bucket
      FROM mt5_account_balance_history WHERE time >= %s AND time < %s) AS raw
ORDER BY tenant_id, account_id, bucket, time DESC
"""


def new_account(using: str = OPERATOR):
    tenant = make_tenant(using=using)
    return make_account(tenant, make_user(tenant, using=using), using=using)


def snapshot(account, at: datetime, balance: str, equity: str, margin_level: str = "400", using: str = OPERATOR):
    make_balance(account, using=using, time=at, balance=Decimal(balance), equity=Decimal(equity),
                 margin_level=Decimal(margin_level))  # fmt: skip


def rollup(using: str = OPERATOR) -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT tenant_id, account_id, bucket, balance, equity FROM mt5_balance_5min"
            " ORDER BY tenant_id, account_id, bucket"
        )
        return cursor.fetchall()


def direct(start: datetime, end: datetime) -> list[tuple]:
    with connections[OPERATOR].cursor() as cursor:
        cursor.execute(DIRECT, [start, end])
        return cursor.fetchall()


def populate(accounts) -> None:
    """Samples every 40 s for the last 75 minutes, with balance and equity changing on every sample."""
    for index, account in enumerate(accounts):
        for step in range(75 * 60 // 40):
            at = NOW - timedelta(seconds=40 * step + index)
            snapshot(account, at, f"{10000 + step}.00", f"{10000 + step * 2 + index}.50", f"{300 + step % 7}")


@pytest.mark.django_db(databases=[OPERATOR])
def test_the_rollup_has_the_same_last_balance_and_equity_per_bucket_as_the_raw_table():
    accounts = [new_account(), new_account()]
    populate(accounts)

    written = balance_rollup_refresh(now=NOW)

    window = (datetime(2026, 3, 2, 11, 0, tzinfo=UTC), datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    expected = direct(*window)
    assert len(expected) == 2 * 12, "two accounts, twelve complete buckets in the seed's window"
    assert written == len(expected)
    assert rollup() == expected


@pytest.mark.django_db(databases=[OPERATOR])
def test_each_bucket_also_carries_the_average_margin_level_and_the_sample_count():
    account = new_account()
    bucket = datetime(2026, 3, 2, 11, 50, tzinfo=UTC)
    for second, level in ((10, "300"), (100, "301"), (250, "302")):
        snapshot(account, bucket + timedelta(seconds=second), "10000", "10000", level)

    balance_rollup_refresh(now=NOW)

    with connections[OPERATOR].cursor() as cursor:
        cursor.execute("SELECT bucket, avg_margin_level, samples FROM mt5_balance_5min")
        assert cursor.fetchall() == [(bucket, Decimal("301.00"), 3)]


@pytest.mark.django_db(databases=[OPERATOR])
def test_the_bucket_still_filling_and_buckets_older_than_the_window_are_left_alone():
    account = new_account()
    snapshot(account, NOW - timedelta(seconds=10), "1", "1")  # 12:02:20: the bucket still filling
    snapshot(account, NOW - timedelta(minutes=2), "2", "2")  # 12:00:30: the same bucket
    snapshot(account, NOW - timedelta(minutes=63), "3", "3")  # 10:59:30: older than the window's first bucket
    snapshot(account, NOW - timedelta(minutes=61), "4", "4")  # 11:01:30: inside

    assert balance_rollup_refresh(now=NOW) == 1
    assert [row[2:] for row in rollup()] == [(datetime(2026, 3, 2, 11, 0, tzinfo=UTC), Decimal(4), Decimal(4))]


@pytest.mark.django_db(databases=[OPERATOR])
def test_a_refresh_rewrites_a_bucket_that_received_a_late_row_and_nothing_else():
    account = new_account()
    snapshot(account, datetime(2026, 3, 2, 11, 30, 10, tzinfo=UTC), "100", "100")
    snapshot(account, datetime(2026, 3, 2, 11, 40, 10, tzinfo=UTC), "200", "200")
    assert balance_rollup_refresh(now=NOW) == 2

    snapshot(account, datetime(2026, 3, 2, 11, 34, 59, tzinfo=UTC), "150", "151")
    assert balance_rollup_refresh(now=NOW) == 1, "unchanged buckets are not rewritten"
    assert [row[3:] for row in rollup()] == [(Decimal(150), Decimal(151)), (Decimal(200), Decimal(200))]


@pytest.mark.django_db(transaction=True, databases=[OPERATOR, "owner"])
def test_an_on_demand_refresh_covers_any_range_and_drops_buckets_whose_rows_are_gone():
    account = new_account()
    last_week = NOW - timedelta(days=7)
    snapshot(account, last_week, "500", "501")
    snapshot(account, last_week + timedelta(hours=1), "600", "601")
    assert balance_rollup_refresh(now=NOW) == 0, "last week is outside the default window"

    assert balance_rollup_refresh(start=last_week - timedelta(hours=1), end=last_week + timedelta(hours=2)) == 2
    assert [row[3:] for row in rollup()] == [(Decimal(500), Decimal(501)), (Decimal(600), Decimal(601))]

    # Deleted as the owner, in the tenant's context: the app roles may not delete time-series rows (decision 0014).
    with tenant_context(account.tenant_id, using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("DELETE FROM mt5_account_balance_history WHERE time < %s", [last_week + timedelta(minutes=30)])
    balance_rollup_refresh(start=last_week - timedelta(hours=1), end=last_week + timedelta(hours=2))
    assert [row[3:] for row in rollup()] == [(Decimal(600), Decimal(601))]


@pytest.mark.django_db(transaction=True, databases=["default", OPERATOR, "owner"])
def test_under_a_tenants_context_the_rollup_shows_only_that_tenants_buckets():
    a, b = new_account(), new_account()
    for account in (a, b):
        snapshot(account, datetime(2026, 3, 2, 11, 30, 10, tzinfo=UTC), "100", "100")
    balance_rollup_refresh(now=NOW)  # committed: the service role's connection sees it

    for account in (a, b):
        with tenant_context(account.tenant_id):
            assert list(BalanceRollup.objects.values_list("tenant_id", "account_id")) == [
                (account.tenant_id, account.pk)
            ]
    assert not BalanceRollup.objects.exists(), "no context, no rows"


@pytest.mark.django_db(databases=[OPERATOR])
def test_the_task_runs_the_seeds_window_every_5_minutes():
    entry = BEAT_SCHEDULE["balance-rollup-refresh"]
    assert (entry["task"], entry["schedule"]) == (balance_rollup_refresh_task.name, timedelta(minutes=5))
    account = new_account()
    snapshot(account, datetime.now(UTC) - timedelta(minutes=10), "1", "1")
    assert balance_rollup_refresh_task.apply().get() == 1


@pytest.mark.django_db(databases=[OPERATOR])
def test_two_samples_at_the_same_instant_give_the_larger_balance_every_time():
    account = new_account()
    at = datetime(2026, 3, 2, 11, 30, 10, tzinfo=UTC)
    snapshot(account, at, "101", "5")
    snapshot(account, at, "100", "7")

    balance_rollup_refresh(now=NOW)

    assert [row[3:] for row in rollup()] == [(Decimal(101), Decimal(5))]
