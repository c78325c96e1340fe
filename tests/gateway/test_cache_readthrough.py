"""`positions_open` reads through the cache: a miss loads the open orders and fills the key for the next reads."""

from __future__ import annotations

import json

import pytest
from factories import make_account, make_order, make_tenant, make_user

from suho.cache import POSITIONS_TTL_S, cache_client, cache_fill, cache_set_many, positions_key
from suho.tenancy import tenant_context
from trading.selectors import positions_open

EA_SNAPSHOT = [{"ticket": 7, "symbol": "XAUUSD", "type": "sell", "volume": 0.05, "open_price": 2412.3, "sl": 2430.0,
                "tp": 2380.0, "profit": -3.25}]  # fmt: skip


@pytest.fixture
def account():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    cache_client().delete(positions_key(account.pk))
    yield account
    cache_client().delete(positions_key(account.pk))


@pytest.mark.django_db
def test_a_miss_loads_the_open_orders_and_the_next_read_is_served_from_the_cache(account):
    make_order(account, ticket=41, symbol="EURUSD", status="open")
    make_order(account, ticket=42, symbol="GBPUSD", status="closed")

    with tenant_context(account.tenant_id):
        first = positions_open(account_id=account.pk)
        second = positions_open(account_id=account.pk)

    assert first["source"] == "database"
    assert [p["ticket"] for p in first["positions"]] == [41]
    assert second == {"positions": first["positions"], "source": "cache"}
    ttl = cache_client().ttl(positions_key(account.pk))
    assert 0 < ttl <= POSITIONS_TTL_S


@pytest.mark.django_db
def test_an_account_without_open_orders_is_cached_as_no_positions(account):
    with tenant_context(account.tenant_id):
        assert positions_open(account_id=account.pk) == {"positions": [], "source": "database"}
        assert positions_open(account_id=account.pk) == {"positions": [], "source": "cache"}


@pytest.mark.django_db
def test_the_eas_snapshot_is_served_as_it_was_sent(account):
    make_order(account, ticket=41, status="open")
    cache_set_many([(positions_key(account.pk), POSITIONS_TTL_S, EA_SNAPSHOT)])

    with tenant_context(account.tenant_id):
        assert positions_open(account_id=account.pk) == {"positions": EA_SNAPSHOT, "source": "cache"}


@pytest.mark.django_db
def test_a_fill_never_replaces_a_snapshot_the_ea_sent_in_the_meantime(account):
    cache_set_many([(positions_key(account.pk), POSITIONS_TTL_S, EA_SNAPSHOT)])

    assert cache_fill(positions_key(account.pk), POSITIONS_TTL_S, []) is False
    assert json.loads(cache_client().get(positions_key(account.pk))) == EA_SNAPSHOT


@pytest.mark.django_db
def test_an_account_the_tenant_context_cannot_see_is_not_cached(account):
    make_order(account, ticket=41, status="open")
    other = make_tenant()

    with tenant_context(other.id):
        assert positions_open(account_id=account.pk) == {"positions": [], "source": "database"}
    assert cache_client().get(positions_key(account.pk)) is None, "an empty answer under RLS means 'not yours'"

    with tenant_context(account.tenant_id):
        assert [p["ticket"] for p in positions_open(account_id=account.pk)["positions"]] == [41]


@pytest.mark.django_db(databases=["default", "owner", "operator"])
def test_a_trade_event_drops_the_cached_positions_so_the_next_read_sees_it(account, django_capture_on_commit_callbacks):
    from tests.gateway.ea_client import trade_opened
    from trading.ingest import trade_event_record

    cache_set_many([(positions_key(account.pk), POSITIONS_TTL_S, [])])  # the EA's snapshot from before the trade

    with django_capture_on_commit_callbacks(execute=True):
        trade_event_record(tenant_id=account.tenant_id, account_id=account.pk, session_id=None,
                           event=trade_opened(ticket=4242, seq=1))  # fmt: skip

    with tenant_context(account.tenant_id):
        answer = positions_open(account_id=account.pk)
    assert answer["source"] == "database"
    assert [p["ticket"] for p in answer["positions"]] == [4242]
