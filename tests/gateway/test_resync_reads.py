"""The resync's three reads, compiled once per process and filled in per call (trading.connection.ea_resync): each
call gets its own account's still-valid, unacknowledged signals and pending commands, oldest first, its own
settings (JSON decoded), and nothing of another account or tenant. Several EAs' resyncs, of any tenants, in one round
trip (`ea_resyncs`) give each EA exactly what its own resync gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import binproto
from accounts.models import MT5Account
from suho.sql import compiled_read
from tests.factories import _create, make_account, make_signal, make_tenant, make_user
from trading import connection as connection_services
from trading.connection import RESYNC_ACCOUNT, RESYNC_NOW, ea_resync, ea_resyncs
from trading.models import EACommand


def _command(account, **fields) -> EACommand:
    fields = {"tenant_id": account.tenant_id, "account": account, "kind": EACommand.Kind.CLOSE_ALL,
              "valid_until": timezone.now() + timedelta(minutes=5), **fields}  # fmt: skip
    return _create(EACommand, account.tenant_id, None, fields)


def _ids(resync, kind, attribute: str) -> list:
    return [getattr(message, attribute) for message in resync.messages if isinstance(message, kind)]


def test_each_resync_reads_its_own_accounts_items_and_nothing_of_another_tenant(committed):
    tenant, other_tenant = make_tenant(), make_tenant()
    user = make_user(tenant)
    mine = make_account(tenant, user, symbol_id_overrides={"7": "XAUUSD.m", "x": "ignored"})
    neighbour = make_account(tenant, user)
    theirs = make_account(other_tenant, make_user(other_tenant))
    now = timezone.now()
    older = make_signal(mine, time=now - timedelta(seconds=2))
    sent = make_signal(mine, time=now - timedelta(seconds=1), status="sent")
    make_signal(mine, acked_at=now)  # acknowledged
    make_signal(mine, valid_until=now - timedelta(seconds=1))  # expired
    neighbours = make_signal(neighbour)
    make_signal(theirs)
    pending = _command(mine)
    _command(mine, status=EACommand.Status.EXECUTED)
    _command(mine, valid_until=now - timedelta(seconds=1))
    neighbours_command = _command(neighbour)

    for _ in range(2):  # the second call reuses what the first compiled
        own = ea_resync(tenant_id=tenant.id, account_id=mine.account_id)
        other = ea_resync(tenant_id=tenant.id, account_id=neighbour.account_id)

        assert isinstance(own.messages[0], binproto.RiskParameters)
        assert isinstance(own.messages[1], binproto.ConfigUpdate)
        assert _ids(own, binproto.TradingSignal, "signal_id") == [older.signal_id, sent.signal_id]
        assert _ids(own, binproto.Command, "command_id") == [pending.command_id]
        assert own.v1_symbol_overrides == {7: "XAUUSD.m"}
        assert _ids(other, binproto.TradingSignal, "signal_id") == [neighbours.signal_id]
        assert _ids(other, binproto.Command, "command_id") == [neighbours_command.command_id]
        assert other.v1_symbol_overrides == {}
    with pytest.raises(MT5Account.DoesNotExist):
        ea_resync(tenant_id=other_tenant.id, account_id=mine.account_id)


@pytest.mark.django_db
def test_a_read_whose_stand_in_is_not_a_parameter_is_refused_when_compiled():
    accounts = MT5Account.objects.filter(account_id=RESYNC_ACCOUNT)
    assert compiled_read(accounts, (RESYNC_ACCOUNT,)).slots
    with pytest.raises(ValueError, match="no parameter to fill"):
        compiled_read(accounts, (RESYNC_ACCOUNT, RESYNC_NOW))  # the time is not in this read


def test_a_resync_is_one_query_even_though_it_loads_only_the_accounts_fields_the_messages_read(committed):
    """The account read loads ACCOUNT_MESSAGE_FIELDS only: a message reading a field outside them would load it with
    a query of its own, on every HELLO."""
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant), allowed_symbols=["EURUSD"], strategy_parameters={"k": 1})
    make_signal(account)
    with CaptureQueriesContext(connections["default"]) as queries:
        resync = ea_resync(tenant_id=tenant.id, account_id=account.account_id)
    assert len(queries) == 1
    risk, config = resync.messages[:2]
    assert risk.allowed_symbols == ("EURUSD",) and config.params == (("k", "1"),)
    assert risk.risk_version == config.config_version == account.config_version


def test_resyncs_of_several_tenants_in_one_round_trip_each_get_what_their_own_resync_gets(committed, monkeypatch):
    tenant, other_tenant = make_tenant(), make_tenant()
    user = make_user(tenant)
    mine = make_account(tenant, user, symbol_id_overrides={"7": "XAUUSD.m"})
    neighbour = make_account(tenant, user)
    theirs = make_account(other_tenant, make_user(other_tenant))
    for account in (mine, mine, neighbour, theirs):
        make_signal(account)
        _command(account)
    pairs = [(tenant.id, mine.account_id), (other_tenant.id, theirs.account_id),
             (other_tenant.id, mine.account_id),  # an account of another tenant: as alone, no such account
             (tenant.id, neighbour.account_id)]  # fmt: skip

    with CaptureQueriesContext(connections["default"]) as queries:
        together = ea_resyncs(pairs)
    assert len(queries) == 1
    alone = [ea_resync(tenant_id=tenant_id, account_id=account_id) for tenant_id, account_id in pairs[:2]]
    assert [_timeless(resync) for resync in together[:2]] == [_timeless(resync) for resync in alone]
    assert len(_ids(together[0], binproto.TradingSignal, "signal_id")) == 2
    assert isinstance(together[2], MT5Account.DoesNotExist)
    assert _timeless(together[3]) == _timeless(ea_resync(tenant_id=tenant.id, account_id=neighbour.account_id))

    monkeypatch.setattr(connection_services, "RESYNCS_PER_ROUND_TRIP", 3)
    with CaptureQueriesContext(connections["default"]) as queries:
        again = ea_resyncs(pairs)
    assert len(queries) == 2  # 3 EAs, then 1
    assert [_timeless(resync) for resync in again[:2]] == [_timeless(resync) for resync in alone]


def _timeless(resync) -> tuple:
    """The resync's messages without the times they were made at, and its symbol overrides."""
    return [replace(message, timestamp_us=0) for message in resync.messages], resync.v1_symbol_overrides
