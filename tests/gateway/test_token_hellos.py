"""Token HELLOs that wait for a database thread together (`trading.connection.ea_token_hellos`, decision 0039): each
gets what its own `ea_token_hello` would give (held after a 4008, refused, or claimed), the claims of several tenants
take one round trip, each claim is a transaction of its own, and a claim that fails in the shared round trip fails
alone."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections

from accounts.models import MT5Account
from accounts.services import ea_authenticate
from compliance.audit import audit_chain_verify
from compliance.models import AuditLog
from suho.routers import SERVICE, operator_path
from suho.tenancy import tenant_context
from tests.round_trips import round_trips_counted
from trading.connection import HelloAsked, TokenHello, ea_rate_limit_hold, ea_token_hellos

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def asked(account, secret) -> HelloAsked:
    tokens = ea_authenticate(account_id=account.account_id, api_key=secret)
    return HelloAsked(account_id=str(account.account_id), token=tokens.access, ea_version="5.1")


def state(account) -> tuple:
    with operator_path():
        row = MT5Account.objects.get(pk=account.pk)
        connects = AuditLog.objects.filter(account_id=account.pk, event_type="ea_connected").count()
    return row.live_session_epoch, row.connection_status, row.live_session_node, connects


def test_each_hello_gets_its_own_outcome_and_the_claims_of_two_tenants_take_one_round_trip(ea_accounts):
    made = ea_accounts(2, 3)  # the first tenant's first account is held, its second refused; the other four claimed
    (_tenant, held_account, held_secret), (_tenant, stranger, stranger_secret), *claimable = made
    hellos = [asked(account, secret) for _tenant, account, secret in claimable]
    other = asked(stranger, stranger_secret)
    refused = [
        HelloAsked(account_id=str(stranger.account_id), token="not.a.token"),
        HelloAsked(account_id=str(stranger.account_id), token=hellos[0].token),  # another account's token
    ]
    ea_rate_limit_hold(account_id=held_account.account_id)
    held = asked(held_account, held_secret)
    with round_trips_counted() as counter:
        ea_token_hellos([other], node="warm")  # a first claim, not counted
        before = counter.count
        outcomes = ea_token_hellos([held, *refused, *hellos], node="node-1")
        used = counter.count - before

    assert used == 1, f"{used} round trips for {len(hellos)} claims:\n{counter.trips_since(before, used)}"
    assert outcomes[0].held_s > 0 and outcomes[0].claim is None
    assert [outcome.refusal.code for outcome in outcomes[1:3]] == ["invalid_token", "invalid_token"]
    for outcome, (tenant, account, _secret) in zip(outcomes[3:], claimable, strict=True):
        assert isinstance(outcome, TokenHello) and outcome.claims.account_id == account.account_id
        assert outcome.claims.tenant_id == tenant.id and outcome.claim.epoch == 1
        assert state(account) == (1, "online", "node-1", 1)
    assert state(held_account)[:2] == (0, "offline") and state(stranger)[:3] == (1, "online", "warm")
    for tenant in {tenant.id for tenant, _account, _secret in made}:
        assert audit_chain_verify(chain=tenant).ok


def test_a_claim_that_fails_in_the_shared_round_trip_fails_alone_and_the_others_are_claimed(ea_accounts):
    """The second account's row is held by another transaction past the lock timeout: its claim fails, and the query
    string's later claims never run. Each claim is then made alone: the first (committed before the failure) a
    second time, the third for the first time; the second fails again, alone, and changes nothing."""
    made = ea_accounts(1, 3)
    tenant = made[0][0]
    hellos = [asked(account, secret) for _tenant, account, secret in made]
    with connections[SERVICE].cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    try:
        with tenant_context(tenant.id, using="owner"), connections["owner"].cursor() as holder:
            holder.execute("SELECT 1 FROM mt5_user_accounts WHERE account_id = %s FOR UPDATE", [made[1][1].account_id])
            outcomes = ea_token_hellos(hellos, node="node-1")
    finally:
        with connections[SERVICE].cursor() as cursor:
            cursor.execute("SET lock_timeout = DEFAULT")

    first, second, third = outcomes
    assert isinstance(second, OperationalError) and "lock timeout" in str(second)
    assert first.claim.epoch == 2 and third.claim.epoch == 1
    assert state(made[0][1]) == (2, "online", "node-1", 2)  # made twice: its connect audited twice
    assert state(made[1][1])[:2] == (0, "offline") and state(made[1][1])[3] == 0
    assert state(made[2][1]) == (1, "online", "node-1", 1)
    with connections[SERVICE].cursor() as cursor:  # the failed transaction was rolled back: the connection goes on
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert audit_chain_verify(chain=tenant.id).ok


def test_hellos_asked_in_a_transaction_are_claimed_in_it(ea_account):
    """Inside a caller's transaction (a test's) the claims cannot be transactions of their own: each joins it."""
    from django.db import transaction

    _tenant, account, secret = ea_account
    hello = asked(account, secret)
    with transaction.atomic(using=SERVICE):
        (outcome,) = ea_token_hellos([hello], node="node-1")
        assert outcome.claim.epoch == 1 and connections[SERVICE].in_atomic_block
    assert state(account) == (1, "online", "node-1", 1)
