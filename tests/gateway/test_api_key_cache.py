"""An API key's Argon2 verification is remembered in Redis (accounts.services.ea_auth._verified_key), so a
reconnecting EA costs no hash; revoking or rotating the key, or disabling its account or tenant, still refuses the
very next HELLO, on another process too: the key's and account's state is read from the database at every
authentication."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

import binproto
from accounts.models import ApiKey, MT5Account, Tenant
from accounts.services import api_key_revoke, api_key_rotate
from binproto import AuthStatus, CloseCode
from suho.cache import cache_client
from suho.routers import operator_path
from tests.gateway.ea_client import WireEA

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def key_of(account) -> ApiKey:
    with operator_path():
        return ApiKey.objects.get(account=account, revoked_at__isnull=True)


def revoke(account) -> None:
    api_key_revoke(api_key=key_of(account))


def rotate(account) -> str:
    return api_key_rotate(api_key=key_of(account))[1]


def disable_account(account) -> None:
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(is_active=False)


def disable_tenant(account) -> None:
    with operator_path():
        Tenant.objects.filter(pk=account.tenant_id).update(is_active=False)


async def hello_on(server_url, account, secret) -> tuple[binproto.AuthResult, WireEA]:
    ea, result = await WireEA.connect(server_url, account, secret)
    return result, ea


@pytest.mark.parametrize(
    ("change", "status", "close_code"),
    [
        (revoke, AuthStatus.REVOKED_KEY, CloseCode.REVOKED),
        (rotate, AuthStatus.REVOKED_KEY, CloseCode.REVOKED),
        (disable_account, AuthStatus.UNKNOWN_ACCOUNT, CloseCode.AUTH_FAILED),
        (disable_tenant, AuthStatus.UNKNOWN_ACCOUNT, CloseCode.AUTH_FAILED),
    ],
)
async def test_a_remembered_key_is_refused_on_another_process_as_soon_as_it_or_its_account_changes(
    ea_account, server_url, change, status, close_code
):
    _tenant, account, secret = ea_account
    first, ea = await hello_on(server_url, account, secret)  # the server process verifies and remembers the key
    await ea.aclose()
    assert first.status == AuthStatus.OK
    assert cache_client().get(f"ea_key_verified:{(await database_sync_to_async(key_of)(account)).key_id}")

    new_secret = await database_sync_to_async(change)(account)

    refused, ea = await hello_on(server_url, account, secret)
    assert refused.status == status
    assert await ea.closed() == close_code
    if new_secret:  # the rotated key's successor works
        again, ea = await hello_on(server_url, account, new_secret)
        await ea.aclose()
        assert again.status == AuthStatus.OK
