"""One live session per account across gateway processes (docs/protocol.md §6 item 6, decision 0017).

Two daphne processes of one deployment (same database, Redis and NATS: conftest's `server_url` and
`second_server_url`) and EAs at the wire (`WireEA`). The waits have deadlines well under the session watch's 30 s,
so a pass proves the takeover over NATS, not the periodic check; the one-second goal is measured, not asserted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

import binproto
from accounts.models import ApiKey, EASession, MT5Account
from accounts.services import ea_authenticate
from binproto import CloseCode
from signals.delivery import signal_publish_on_commit
from signals.models import TradingSignal
from suho.audit import audit_record
from suho.tenancy import tenant_context
from tests.gateway.ea_client import WireEA, rows, trade_opened
from trading.connection import ea_session_claim

live = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
DEADLINE_S = 5.0


def signal_create(tenant, account, *, entry=1.0953, low=1.0951, high=1.0955, volume=0.1):
    """A EURUSD BUY, published when it commits."""
    with tenant_context(tenant.id):
        now = timezone.now()
        signal = TradingSignal.objects.create(
            time=now, tenant=tenant, account=account, symbol="EURUSD", action="BUY", entry_price=entry,
            entry_price_min=low, entry_price_max=high, volume=volume, valid_until=now + timedelta(minutes=5),
        )  # fmt: skip
        signal_publish_on_commit(signal)
    return signal.signal_id


async def replaced_and_survivor(one: WireEA, two: WireEA, timeout: float = DEADLINE_S) -> tuple[WireEA, WireEA]:
    """Of two sessions of one account, the one closed with 4012 (asserted) and the other."""
    done, _pending = await asyncio.wait(
        [asyncio.create_task(one.closed(timeout)), asyncio.create_task(two.closed(timeout))],
        timeout=timeout, return_when=asyncio.FIRST_COMPLETED,
    )  # fmt: skip
    assert done, "neither connection was closed"
    replaced, survivor = (one, two) if one.close_code is not None else (two, one)
    assert replaced.close_code == CloseCode.REPLACED
    return replaced, survivor


def ack(signal_id) -> binproto.Ack:
    return binproto.Ack(acked_type=binproto.MsgType.TRADING_SIGNAL, ref_id=signal_id, ref_version=0,
                        status=binproto.AckStatus.RECEIVED, reason_code=0, reason="")  # fmt: skip


async def poll(query: str, params, accept, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not accept(result := await database_sync_to_async(rows)(query, params)):
        assert time.monotonic() < deadline, f"{what}: still {result}"
        await asyncio.sleep(0.05)
    return result


async def only_one_gets_the_next_signal(tenant, account, live_ea: WireEA, closed_ea: WireEA) -> None:
    """A signal made now reaches the live session once, its ACK is recorded, and the closed one never saw it."""
    signal_id = await database_sync_to_async(signal_create)(tenant, account)
    await live_ea.next(binproto.TradingSignal, lambda m: m.signal_id == signal_id)
    await live_ea.send(ack(signal_id))
    await poll("SELECT acked_at IS NOT NULL FROM mt5_trading_signals WHERE signal_id = %s", [signal_id],
               lambda r: r == [(True,)], "the live session's ACK")  # fmt: skip
    assert live_ea.count(binproto.TradingSignal, lambda m: m.signal_id == signal_id) == 1
    assert closed_ea.count(binproto.TradingSignal, lambda m: m.signal_id == signal_id) == 0
    assert live_ea.close_code is None


@live
async def test_a_newer_session_on_another_process_closes_the_older_with_4012_and_only_it_gets_the_next_signal(
    ea_account, server_url, second_server_url
):
    tenant, account, secret = ea_account
    older, first = await WireEA.connect(server_url, account, secret, "older")
    await older.next(binproto.RiskParameters)  # its session is set up
    newer, second = await WireEA.connect(second_server_url, account, secret, "newer")
    assert first.status == second.status == binproto.AuthStatus.OK

    closing = await older.next(binproto.SessionClosing, timeout=DEADLINE_S)
    assert closing.close_code == CloseCode.REPLACED
    assert await older.closed(timeout=DEADLINE_S) == CloseCode.REPLACED
    await only_one_gets_the_next_signal(tenant, account, newer, older)

    # The older session is ended in the database, and its disconnect did not mark the account offline.
    await poll("SELECT count(*) FROM mt5_audit_log WHERE event_type = 'ea_disconnected'"
               " AND metadata->>'session_id' = %s", [str(first.session_id)], lambda r: r == [(1,)],
               "the older session's disconnect")  # fmt: skip
    assert await database_sync_to_async(rows)(
        "SELECT s.end_reason, a.live_session_id, a.connection_status FROM mt5_ea_sessions s"
        " JOIN mt5_user_accounts a USING (account_id) WHERE s.session_id = %s", [first.session_id]
    ) == [("replaced", second.session_id, "online")]  # fmt: skip
    await newer.aclose()


@live
async def test_the_same_account_on_two_processes_at_once_keeps_exactly_one_live_session(
    ea_account, server_url, second_server_url
):
    tenant, account, secret = ea_account
    (one, _), (two, _) = await asyncio.gather(
        WireEA.connect(server_url, account, secret, "on A"), WireEA.connect(second_server_url, account, secret, "on B")
    )
    replaced, survivor = await replaced_and_survivor(one, two)
    await only_one_gets_the_next_signal(tenant, account, survivor, replaced)
    await survivor.aclose()


@live
async def test_frames_of_a_replaced_session_change_nothing_even_before_it_is_told(ea_account, server_url):
    """A newer session claims the account on a process this one cannot hear (no takeover request arrives): the
    older socket is still open, but its ACK is not recorded and its trade event is refused, and closes it."""
    tenant, account, secret = ea_account
    older, _ = await WireEA.connect(server_url, account, secret, "older")
    signal_id = await database_sync_to_async(signal_create)(tenant, account)
    await older.next(binproto.TradingSignal, lambda m: m.signal_id == signal_id)
    await poll("SELECT status FROM mt5_trading_signals WHERE signal_id = %s", [signal_id],
               lambda r: r == [("sent",)], "the SENT mark")  # fmt: skip

    newer = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    await database_sync_to_async(ea_session_claim)(
        tenant_id=tenant.id, account_id=account.account_id, session_id=newer.session_id, node="unreachable"
    )
    await older.send(ack(signal_id))
    await older.send(trade_opened(ticket=4242, seq=1, signal_id=signal_id))  # the gateway flushes ACKs first

    closing = await older.next(binproto.SessionClosing, timeout=DEADLINE_S)
    assert closing.close_code == CloseCode.REPLACED
    assert await older.closed(timeout=DEADLINE_S) == CloseCode.REPLACED
    assert older.count(binproto.EventAck) == 0
    assert await database_sync_to_async(rows)(
        "SELECT status, acked_at, (SELECT count(*) FROM mt5_trade_events WHERE account_id = %s),"
        " (SELECT count(*) FROM mt5_trade_orders WHERE account_id = %s)"
        " FROM mt5_trading_signals WHERE signal_id = %s", [account.account_id, account.account_id, signal_id]
    ) == [("sent", None, 0, 0)]  # fmt: skip


@live
async def test_within_one_process_a_newer_session_still_replaces_the_older(ea_account, server_url):
    tenant, account, secret = ea_account
    older, _ = await WireEA.connect(server_url, account, secret, "older")
    await older.next(binproto.RiskParameters)
    newer, _ = await WireEA.connect(server_url, account, secret, "newer")
    assert (await older.next(binproto.SessionClosing, timeout=DEADLINE_S)).close_code == CloseCode.REPLACED
    assert await older.closed(timeout=DEADLINE_S) == CloseCode.REPLACED
    await only_one_gets_the_next_signal(tenant, account, newer, older)
    await newer.aclose()


@live
def test_a_stale_copy_of_the_account_saved_in_full_never_moves_the_live_session_back(ea_account):
    """The admin and forms save every column of the copy they read: the epoch they carry must not undo a claim."""
    tenant, account, secret = ea_account
    with tenant_context(tenant.id):
        stale = MT5Account.objects.get(pk=account.pk)
    newer = ea_authenticate(account_id=account.account_id, api_key=secret)
    claim = ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=newer.session_id, node="b")
    with tenant_context(tenant.id):
        stale.name = "renamed in the admin"
        stale.save()

    assert rows(
        "SELECT name, live_session_epoch, live_session_id, live_session_node FROM mt5_user_accounts"
        " WHERE account_id = %s", [account.account_id]
    ) == [("renamed in the admin", claim.epoch, newer.session_id, "b")]  # fmt: skip


@live
def test_a_claim_never_deadlocks_with_an_authentication_that_has_audited(ea_account):
    """ea_authenticate's transaction audits (taking the tenant's audit-chain lock) and inserts its session, whose
    foreign key to the account is checked at COMMIT with FOR KEY SHARE on the account row. A claim locks that row,
    then audits the replaced session. Had the claim locked it FOR UPDATE, the two would deadlock (seen in CI as
    INTERNAL_ERROR at HELLO); FOR NO KEY UPDATE lets the foreign-key check through."""
    tenant, account, secret = ea_account
    first = ea_authenticate(account_id=account.account_id, api_key=secret)
    ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=first.session_id, node="a")
    second = ea_authenticate(account_id=account.account_id, api_key=secret)
    outcome = {}

    def claim():
        try:
            outcome["claim"] = ea_session_claim(
                tenant_id=tenant.id, account_id=account.account_id, session_id=second.session_id, node="b"
            )
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            outcome["claim"] = exc
        finally:
            connections.close_all()

    claimer = threading.Thread(target=claim)
    with tenant_context(tenant.id):  # what ea_authenticate's transaction does, held open at its end
        key = ApiKey.objects.get(account=account)
        EASession.objects.create(tenant_id=tenant.id, account=account, api_key=key, last_seen_at=timezone.now())
        audit_record(tenant_id=tenant.id, event_type="ea_auth_succeeded", category="auth", action="login",
                     account_id=account.account_id)  # fmt: skip
        claimer.start()
        deadline = time.monotonic() + DEADLINE_S
        while not rows("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
            assert time.monotonic() < deadline, "the claim never waited for the audit chain"
            time.sleep(0.02)
    claimer.join(DEADLINE_S)

    assert not claimer.is_alive()
    assert not isinstance(outcome["claim"], Exception), outcome["claim"]
    assert outcome["claim"].epoch == 2


@live
async def test_a_profile_from_a_replaced_session_changes_nothing_and_closes_it_with_4012(ea_account, server_url):
    tenant, account, secret = ea_account
    older, _ = await WireEA.connect(server_url, account, secret, "older")
    await older.next(binproto.RiskParameters)
    newer = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    await database_sync_to_async(ea_session_claim)(
        tenant_id=tenant.id, account_id=account.account_id, session_id=newer.session_id, node="unreachable"
    )
    await older.send(binproto.AccountProfile(51234567, binproto.AccountType.LIVE, 500, 4755, "Broker", "Server", "USD",
                                             "2.1.0", (), timestamp_us=time.time_ns() // 1000))  # fmt: skip

    assert (await older.next(binproto.SessionClosing, timeout=DEADLINE_S)).close_code == CloseCode.REPLACED
    assert await older.closed(timeout=DEADLINE_S) == CloseCode.REPLACED
    assert await database_sync_to_async(rows)(
        "SELECT account_number, broker, profile_updated_at FROM mt5_user_accounts WHERE account_id = %s",
        [account.account_id],
    ) == [(None, "", None)]
