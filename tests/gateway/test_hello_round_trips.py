"""A HELLO with an access token costs at most three database round trips (issue 21): the claim (session check,
epoch, online mark, audit) and the resync read, each one round trip, and no pool check for a connection just used.

Round trips are counted at the wire: this process's service and operator connections go through a TCP proxy that
counts each time the client speaks after the server has answered (a query string of several statements is one).
The consumer runs in this process (Channels' communicator); everything it does on the database goes through it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

import binproto
from accounts.models import EASession, MT5Account, Tenant
from accounts.services import ea_authenticate
from compliance.audit import audit_chain_verify
from compliance.models import AuditLog
from eaclient.client import hello_build
from suho.asgi import application
from suho.routers import operator_path
from tests.gateway.ea_client import connect, receive_until
from tests.round_trips import round_trips_counted as round_trips_counted_sync
from tests.round_trips import round_trips_counter_start, round_trips_counter_stop
from trading.connection import ea_disconnected, ea_session_claim

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

MAX_TOKEN_HELLO_ROUND_TRIPS = 3


@asynccontextmanager
async def round_trips_counted():
    """`tests.round_trips.round_trips_counted` for a test on the event loop (the pools are switched in a thread)."""
    counter = await sync_to_async(round_trips_counter_start)()
    try:
        yield counter
    finally:
        await sync_to_async(round_trips_counter_stop)(counter)


async def token_connect(account, token: str):
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    assert (await communicator.connect())[0]
    await communicator.send_to(bytes_data=binproto.encode(hello_build(account.account_id, access_token=token)))
    return communicator, await receive_until(communicator, binproto.AuthResult)


async def test_a_token_hello_takes_at_most_three_database_round_trips(ea_account):
    _tenant, account, secret = ea_account
    async with round_trips_counted() as counter:
        first, result = await connect(account, secret)  # the API-key HELLO: the tokens
        await first.disconnect()  # its bookkeeping done before the count starts
        before = counter.count
        second, again = await token_connect(account, result.access_token)
        await receive_until(second, binproto.ConfigUpdate)  # the resync's last message: no signals or commands
        used = counter.count - before
        await second.disconnect()

    assert again.status == binproto.AuthStatus.OK and again.session_id == result.session_id
    assert 2 <= used <= MAX_TOKEN_HELLO_ROUND_TRIPS, f"{used} round trips:\n{counter.trips_since(before, used)}"


def account_state(account) -> tuple:
    with operator_path():
        row = MT5Account.objects.get(pk=account.pk)
        audits = AuditLog.objects.filter(account_id=account.pk, event_type="ea_connected").count()
    return row.live_session_epoch, row.connection_status, audits


def disable(account, what: str) -> None:
    with operator_path():
        if what == "account":
            MT5Account.objects.filter(pk=account.pk).update(is_active=False)
        else:
            Tenant.objects.filter(pk=account.tenant_id).update(is_active=False)


@pytest.mark.parametrize("what", ["account", "tenant"])
async def test_a_token_hello_of_a_disabled_account_or_tenant_is_refused_and_changes_nothing(ea_account, what):
    _tenant, account, secret = ea_account
    first, result = await connect(account, secret)
    await first.disconnect()
    await database_sync_to_async(disable)(account, what)
    before = await database_sync_to_async(account_state)(account)

    communicator, refused = await token_connect(account, result.access_token)

    assert refused.status == binproto.AuthStatus.INVALID_TOKEN
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.send"  # SESSION_CLOSING
    assert (await communicator.receive_output(timeout=5))["code"] == binproto.CloseCode.AUTH_FAILED
    assert await database_sync_to_async(account_state)(account) == before


def test_a_claim_that_replaces_a_session_ends_it_and_audits_both_in_order_in_an_intact_chain(ea_account):
    tenant, account, secret = ea_account
    first, second = (ea_authenticate(account_id=account.account_id, api_key=secret) for _ in range(2))
    ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=first.session_id, node="a")

    claim = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id,
                             node="b", ea_version="2.0")  # fmt: skip

    assert (claim.epoch, claim.previous_session_id, claim.previous_node) == (2, first.session_id, "a")
    with operator_path():
        ended = EASession.objects.get(session_id=first.session_id)
        audits = list(AuditLog.objects.filter(account_id=account.pk, event_category="connection").order_by("chain_seq"))
    assert ended.end_reason == EASession.END_REPLACED and ended.ended_at is not None
    assert [(a.event_type, a.metadata.get("session_id")) for a in audits] == [
        ("ea_connected", str(first.session_id)),
        ("ea_session_replaced", str(second.session_id)),
        ("ea_connected", str(second.session_id)),
    ]
    assert audits[1].metadata["previous_session_id"] == str(first.session_id) and audits[1].metadata["epoch"] == 2
    assert audits[2].metadata["ea_version"] == "2.0"
    assert audit_chain_verify(chain=tenant.id).ok


def connection_audits(account) -> list[tuple]:
    with operator_path():
        audits = AuditLog.objects.filter(account_id=account.pk, event_type="ea_disconnected").order_by("chain_seq")
        return [(a.event_description, a.metadata, a.severity) for a in audits]


def test_a_disconnect_is_one_round_trip_and_marks_the_account_offline_only_for_its_live_session(ea_account):
    """The disconnect's audit row and offline mark commit together in one round trip (the audit chain's lock is held
    only for that statement); a replaced session's disconnect is audited and leaves the account online."""
    tenant, account, secret = ea_account
    first, second = (ea_authenticate(account_id=account.account_id, api_key=secret) for _ in range(2))
    old = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=first.session_id, node="a")
    new = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id, node="a")

    with round_trips_counted_sync() as counter:
        ea_disconnected(
            tenant_id=tenant.id,
            account_id=account.account_id,
            session_id=first.session_id,
            close_code=binproto.CloseCode.REPLACED,
            epoch=old.epoch,
        )  # a first disconnect, not counted
        assert account_state(account)[1] == "online"
        before = counter.count
        ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id,
                        close_code=1006, epoch=new.epoch)  # fmt: skip
        used = counter.count - before
    assert used == 1, f"{used} round trips:\n{counter.trips_since(before, used)}"
    assert account_state(account)[1] == "offline"

    assert connection_audits(account) == [
        (f"EA disconnected (code {int(binproto.CloseCode.REPLACED)})",
         {"session_id": str(first.session_id), "close_code": int(binproto.CloseCode.REPLACED)}, "info"),
        ("EA disconnected (code 1006)", {"session_id": str(second.session_id), "close_code": 1006}, "info"),
    ]  # fmt: skip
    assert audit_chain_verify(chain=tenant.id).ok


def test_a_disconnect_of_another_tenants_account_changes_nothing(ea_account):
    tenant, account, secret = ea_account
    session = ea_authenticate(account_id=account.account_id, api_key=secret)
    ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=session.session_id, node="a")
    other = Tenant.objects.create(name="other", slug="other-disconnect")

    ea_disconnected(
        tenant_id=other.id, account_id=account.account_id, session_id=session.session_id, close_code=1000, epoch=None
    )  # under the other tenant's context the account is not there

    assert account_state(account)[1] == "online" and connection_audits(account) == []
    assert audit_chain_verify(chain=tenant.id).ok


def test_a_replaced_sessions_disconnect_does_not_wait_for_the_account_row(ea_account):
    """Its offline mark does not apply, so it takes no row lock: it does not queue behind a claim or a frame's
    transaction holding the account row. The live session's disconnect does wait for it."""
    from django.db import OperationalError, connections

    from suho.routers import SERVICE
    from suho.tenancy import tenant_context

    tenant, account, secret = ea_account
    first, second = (ea_authenticate(account_id=account.account_id, api_key=secret) for _ in range(2))
    old = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=first.session_id, node="a")
    new = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id, node="a")
    with connections[SERVICE].cursor() as cursor:
        cursor.execute("SET lock_timeout = '1s'")
    try:
        with tenant_context(tenant.id, using="owner"), connections["owner"].cursor() as holder:
            holder.execute("SELECT 1 FROM mt5_user_accounts WHERE account_id = %s FOR UPDATE", [account.account_id])
            assert holder.fetchall() == [(1,)]  # the row is held, as a claim or a frame's transaction holds it
            ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=first.session_id,
                            close_code=binproto.CloseCode.REPLACED, epoch=old.epoch)  # fmt: skip
            with pytest.raises(OperationalError, match="lock timeout"):
                ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id,
                                close_code=1000, epoch=new.epoch)  # fmt: skip
    finally:
        with connections[SERVICE].cursor() as cursor:
            cursor.execute("SET lock_timeout = DEFAULT")

    assert account_state(account)[1] == "online"
    assert [metadata["session_id"] for _d, metadata, _s in connection_audits(account)] == [str(first.session_id)]
