"""Heartbeats are volume, buffered before they are written (the gateway's batcher, or the data bridge), so a batch
with an EA's last heartbeat can commit after its disconnect. It must not mark the account online again: no EA is
connected (trading migration 0009, decision 0017). The heartbeat itself is kept in the history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from factories import heartbeat_row

from accounts.models import MT5Account
from accounts.services import ea_authenticate
from suho.routers import operator_path
from tests.gateway.ea_client import rows
from trading.connection import accounts_mark_silent_offline, ea_disconnected, ea_session_claim
from trading.ingest import heartbeats_insert

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def connected(tenant, account, secret):
    session = ea_authenticate(account_id=account.account_id, api_key=secret)
    claim = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=session.session_id,
                             node="node-1")  # fmt: skip
    return session.session_id, claim.epoch


def status(account) -> str:
    with operator_path():
        return MT5Account.objects.get(pk=account.pk).connection_status


def test_a_heartbeat_written_after_its_eas_disconnect_leaves_the_account_offline_until_it_connects_again(ea_account):
    tenant, account, secret = ea_account
    session_id, epoch = connected(tenant, account, secret)
    buffered = heartbeat_row(account, session_id)  # read before the close, still in the batcher

    ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=session_id, close_code=1012,
                    epoch=epoch)  # fmt: skip
    heartbeats_insert([buffered])

    assert status(account) == "offline"
    stored = rows("SELECT count(*) FROM mt5_ea_heartbeat WHERE account_id = %s", [account.account_id])
    assert stored == [(1,)]  # the history keeps it

    session_id, _epoch = connected(tenant, account, secret)  # the EA comes back
    heartbeats_insert([heartbeat_row(account, session_id)])
    assert status(account) == "online"


def test_an_account_the_silence_check_marked_offline_is_online_again_at_its_eas_next_heartbeat(ea_account):
    """Its EA never disconnected (a frozen terminal, a network that held the socket): its heartbeats resume."""
    tenant, account, secret = ea_account
    session_id, _epoch = connected(tenant, account, secret)
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert accounts_mark_silent_offline() == 1 and status(account) == "offline"

    heartbeats_insert([heartbeat_row(account, session_id)])

    assert status(account) == "online"


def test_a_replaced_sessions_disconnect_leaves_its_successors_heartbeats_counting(ea_account):
    """The older session closes after the newer one claimed the account: its disconnect records nothing about the
    live epoch, so the newer session's heartbeats keep the account online."""
    tenant, account, secret = ea_account
    older, older_epoch = connected(tenant, account, secret)
    newer, _epoch = connected(tenant, account, secret)

    ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=older, close_code=4012,
                    epoch=older_epoch)  # fmt: skip
    heartbeats_insert([heartbeat_row(account, newer)])

    assert status(account) == "online"


def test_a_stale_copy_of_the_account_saved_after_the_ea_came_back_does_not_stop_its_heartbeats(ea_account):
    """A full-row save of a copy read while the EA was away (a form, a script) writes back the disconnect's epoch;
    the EA's new connection has a newer one, so its heartbeats still mark the account online."""
    tenant, account, secret = ea_account
    session_id, epoch = connected(tenant, account, secret)
    ea_disconnected(tenant_id=tenant.id, account_id=account.account_id, session_id=session_id, close_code=1006,
                    epoch=epoch)  # fmt: skip
    with operator_path():
        stale = MT5Account.objects.get(pk=account.pk)
    session_id, _epoch = connected(tenant, account, secret)  # the EA comes back
    with operator_path():
        stale.name = "renamed"
        stale.save()  # every column, the epochs included (the live one is kept: accounts migration 0006)
        MT5Account.objects.filter(pk=account.pk).update(connection_status="offline")  # as the silence check would

    heartbeats_insert([heartbeat_row(account, session_id)])

    assert status(account) == "online"
