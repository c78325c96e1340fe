"""Disconnects that wait for a database thread together (`trading.connection.ea_disconnects`, decision 0041): a
draining process records all of them in one round trip per TRANSACTIONS_PER_ROUND_TRIP, each EA's disconnect its own
transaction with the outcome `ea_disconnected` would give it alone; one that fails in the shared round trip fails
alone; and the gateway's disconnect whose caller was cancelled while it waited (a drain's deadline) is still
recorded."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError, connections

from accounts.models import MT5Account, Tenant
from accounts.services import ea_authenticate
from compliance.audit import audit_chain_verify
from compliance.models import AuditLog
from suho.routers import SERVICE, operator_path
from suho.tenancy import tenant_context
from tests.round_trips import round_trips_counted
from trading.connection import Disconnected, ea_disconnects, ea_session_claim
from trading.gateway import disconnects

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def claimed(tenant, account, secret, node: str = "node-1") -> Disconnected:
    """The account's EA connected (its session claimed), as its disconnect would be asked for."""
    session = ea_authenticate(account_id=account.account_id, api_key=secret)
    claim = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=session.session_id,
                             node=node)  # fmt: skip
    return Disconnected(tenant.id, account.account_id, session.session_id, 1012, claim.epoch)


def state(account) -> tuple[str, int]:
    with operator_path():
        status = MT5Account.objects.get(pk=account.pk).connection_status
        disconnects = AuditLog.objects.filter(account_id=account.pk, event_type="ea_disconnected").count()
    return status, disconnects


def test_the_disconnects_of_two_tenants_take_one_round_trip_each_with_its_own_outcome(ea_accounts):
    made = ea_accounts(2, 3)
    ended = [claimed(*one) for one in made]
    (tenant, replaced_account, secret), *_rest = made
    replaced = ended[0]
    ended[0] = claimed(tenant, replaced_account, secret)  # a newer session holds it: the older one's end is audited
    stranger = Tenant.objects.create(name="stranger", slug="stranger-disconnects")
    foreign = Disconnected(stranger.id, made[1][1].account_id, ended[1].session_id, 1000, ended[1].epoch)

    with round_trips_counted() as counter:
        ea_disconnects([Disconnected(tenant.id, made[2][1].account_id, ended[2].session_id, 1000, 0)])  # warm
        before = counter.count
        outcomes = ea_disconnects([replaced, foreign, *ended[1:]])
        used = counter.count - before

    assert used == 1, f"{used} round trips:\n{counter.trips_since(before, used)}"
    assert outcomes == [None] * 7
    assert state(replaced_account) == ("online", 1)  # its live session is the newer one
    for (_tenant, account, _secret), audited in zip(made[1:], [1, 2, 1, 1, 1], strict=True):
        assert state(account) == ("offline", audited)  # the warm-up's stale epoch was audited, nothing more
    with operator_path():
        assert not AuditLog.objects.filter(tenant_id=stranger.id).exists()  # another tenant's id changed nothing
    for tenant_id in {tenant.id for tenant, _account, _secret in made}:
        assert audit_chain_verify(chain=tenant_id).ok


def test_a_disconnect_that_fails_in_the_shared_round_trip_fails_alone_and_the_others_are_recorded(ea_accounts):
    """The second account's row is held by another transaction past the lock timeout: its disconnect fails, and the
    query string's later ones never run. Each is then made alone: the first (committed before the failure) a second
    time, audited twice; the second fails again, alone, and changes nothing."""
    made = ea_accounts(1, 3)
    tenant = made[0][0]
    ended = [claimed(*one) for one in made]
    with connections[SERVICE].cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    try:
        with tenant_context(tenant.id, using="owner"), connections["owner"].cursor() as holder:
            holder.execute("SELECT 1 FROM mt5_user_accounts WHERE account_id = %s FOR UPDATE", [made[1][1].account_id])
            first, second, third = ea_disconnects(ended)
    finally:
        with connections[SERVICE].cursor() as cursor:
            cursor.execute("SET lock_timeout = DEFAULT")

    assert first is None and third is None
    assert isinstance(second, OperationalError) and "lock timeout" in str(second)
    assert [state(account) for _tenant, account, _secret in made] == [("offline", 2), ("online", 0), ("offline", 1)]
    with connections[SERVICE].cursor() as cursor:  # the failed transaction was rolled back: the connection goes on
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert audit_chain_verify(chain=tenant.id).ok


async def test_the_gateways_disconnect_is_recorded_though_its_caller_was_cancelled_while_it_waited(ea_account, held):
    ended = await database_sync_to_async(claimed)(*ea_account)
    asking = asyncio.ensure_future(disconnects.ask(ended))
    await asyncio.sleep(0)  # it waits for a database thread
    asking.cancel()
    await asyncio.sleep(0)

    await held.run_next()

    assert asking.cancelled()
    assert await database_sync_to_async(state)(ea_account[1]) == ("offline", 1)
