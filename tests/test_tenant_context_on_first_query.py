"""suho.tenancy.tenant_context_on_first_query (issue 21): no round trip for a block that queries nothing; a block that
queries gets the tenant's context (its rows only) in one transaction that ends with the block."""

from __future__ import annotations

import pytest

from accounts.models import MT5Account
from suho.tenancy import current_tenant, tenant_context_on_first_query
from tests.accounts.helpers import account_make, tenant_make
from tests.round_trips import round_trips_counted


@pytest.fixture
def two_tenants(committed):
    tenants = [tenant_make(), tenant_make()]
    return tenants, [account_make(tenant) for tenant in tenants]


def test_a_block_that_queries_nothing_costs_no_round_trip(two_tenants):
    tenants, _accounts = two_tenants
    with round_trips_counted() as counter:
        MT5Account.objects.count()  # the connection made through the counter
        before = counter.count
        with tenant_context_on_first_query(tenants[0].id):
            pass
        used = counter.count - before
        MT5Account.objects.count()
    assert used == 0, counter.trips_since(before, used)
    assert counter.count > before  # the counter counts


def test_a_query_in_the_block_sees_its_tenants_rows_only_and_nothing_stays_set(two_tenants):
    tenants, accounts = two_tenants
    with tenant_context_on_first_query(tenants[0].id):
        seen = list(MT5Account.objects.values_list("account_id", flat=True))
        inside = current_tenant()
    assert seen == [accounts[0].account_id]
    assert inside == tenants[0].id
    assert current_tenant() is None
    assert MT5Account.objects.count() == 0  # no context: row security shows nothing


def test_an_error_in_the_block_rolls_back_what_it_wrote(two_tenants):
    tenants, accounts = two_tenants
    with pytest.raises(RuntimeError), tenant_context_on_first_query(tenants[0].id):
        MT5Account.objects.filter(account_id=accounts[0].account_id).update(broker="renamed")
        raise RuntimeError("after the write")
    with tenant_context_on_first_query(tenants[0].id):
        assert MT5Account.objects.get(account_id=accounts[0].account_id).broker != "renamed"


def test_a_malformed_tenant_id_is_refused_before_any_sql(committed):
    with pytest.raises(ValueError), tenant_context_on_first_query("1; DROP TABLE x"):
        pass


def test_a_first_executemany_gets_the_tenant_setting_too(two_tenants):
    from django.db import connections

    tenants, accounts = two_tenants
    with tenant_context_on_first_query(tenants[0].id):
        with connections["default"].cursor() as cursor:
            cursor.executemany(
                "UPDATE mt5_user_accounts SET broker = %s WHERE account_id = %s",
                [("first", accounts[0].account_id), ("other", accounts[1].account_id)],
            )
        brokers = dict(MT5Account.objects.values_list("account_id", "broker"))
    assert brokers == {accounts[0].account_id: "first"}  # the other tenant's row was neither seen nor changed
    with tenant_context_on_first_query(tenants[1].id):
        assert MT5Account.objects.get().broker != "other"
