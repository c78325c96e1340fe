"""A trader of tenant A gets 404 — not 403, not data — for every portal URL that names tenant B's rows."""

from __future__ import annotations

import pytest

from accounts.models import ApiKey, MT5Account
from accounts.services import api_key_create, mt5_account_create
from suho.routers import operator_path
from tests.portal.conftest import trader_make

ACCOUNT_URLS = [
    ("get", "/portal/accounts/{account}/"),
    ("get", "/portal/accounts/{account}/risk/"),
    ("post", "/portal/accounts/{account}/risk/"),
    ("get", "/portal/accounts/{account}/settings/"),
    ("post", "/portal/accounts/{account}/settings/"),
    ("post", "/portal/accounts/{account}/stop/"),
    ("post", "/portal/accounts/{account}/keys/"),
    ("post", "/portal/accounts/{account}/keys/{key}/rotate/"),
    ("post", "/portal/accounts/{account}/keys/{key}/revoke/"),
]


@pytest.fixture
def other_tenants_account(committed):
    bob = trader_make("Bob")
    account = mt5_account_create(user=bob, name="Bob's live")
    key, _ = api_key_create(account=account, created_by=bob)
    return account, key


@pytest.mark.parametrize(("method", "url"), ACCOUNT_URLS)
def test_another_tenants_account_urls_are_404_and_change_nothing(other_tenants_account, client_of, method, url):
    account, key = other_tenants_account
    alice = trader_make("Alice")
    response = getattr(client_of(alice), method)(url.format(account=account.account_id, key=key.id))
    assert response.status_code == 404
    with operator_path():
        after = MT5Account.objects.get(pk=account.pk)
        assert (after.config_version, after.emergency_stop) == (account.config_version, False)
        assert ApiKey.objects.filter(account=account).count() == 1
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_own_key_under_another_tenants_account_id_is_404(other_tenants_account, client_of):
    account, _ = other_tenants_account
    alice = trader_make("Alice")
    mine = mt5_account_create(user=alice, name="Alice's")
    key, _ = api_key_create(account=mine, created_by=alice)
    url = f"/portal/accounts/{account.account_id}/keys/{key.id}/revoke/"
    assert client_of(alice).post(url).status_code == 404


def test_another_tenants_signal_cannot_be_cancelled_from_the_portal(other_tenants_account, client_of):
    from signals.models import TradingSignal
    from suho.tenancy import tenant_context
    from tests.factories import make_signal

    account, _ = other_tenants_account
    with tenant_context(account.tenant_id):
        signal = make_signal(account)
    alice = trader_make("Alice")
    assert client_of(alice).post(f"/portal/signals/{signal.signal_id}/cancel/").status_code == 404
    assert str(signal.signal_id) not in client_of(alice).get("/portal/signals/").content.decode()
    with operator_path():
        assert TradingSignal.objects.get(pk=signal.pk).status == "pending"
