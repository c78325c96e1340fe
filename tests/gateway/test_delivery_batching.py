"""The gateway's batched outbound bookkeeping (trading.outbound_batch): SENT marks and ACKs applied set-based per
tenant, with the per-message rules intact: expired signals are not marked, duplicates change nothing, another
tenant's ids are invisible, refusals are audited, and rows the lifecycle refuses leave the rest of the batch alone."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

import binproto
from accounts.models import MT5Account
from compliance.models import AuditLog
from signals import lifecycle
from signals.models import TradingSignal
from suho.routers import SERVICE
from suho.tenancy import current_tenant, tenant_context
from tests.factories import make_account, make_signal, make_tenant, make_user
from tests.gateway.ea_client import connect, receive_until, rows
from trading.models import EACommand
from trading.outbound import command_issue
from trading.outbound_batch import (
    COMMAND_ACK,
    SIGNAL_ACK,
    SIGNAL_SENT,
    OutboundRow,
    outbound_bookkeeping_apply,
    outbound_flush,
)

Status = binproto.AckStatus


def _account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def _signal(account, **fields) -> TradingSignal:
    return make_signal(account, **fields)


def _fresh(account, model, pk):
    with tenant_context(account.tenant_id):
        return model.objects.get(pk=pk)


def _row(account, kind, ref_id, status=None, reason="", at=None) -> OutboundRow:
    return OutboundRow(str(account.tenant_id), kind, ref_id, at or timezone.now(), status, reason)


@pytest.mark.django_db(databases=["default"])
def test_sent_marks_and_acks_apply_once_skip_expired_signals_and_never_reach_another_tenant():
    mine, theirs = _account(), _account()
    sent, overtaken, acked = _signal(mine), _signal(mine), _signal(mine, status=lifecycle.SENT)
    expired = _signal(mine, valid_until=timezone.now() - timedelta(seconds=1))
    foreign = _signal(theirs)
    first = timezone.now() - timedelta(seconds=1)
    outbound_bookkeeping_apply([
        _row(mine, SIGNAL_SENT, sent.signal_id),
        _row(mine, SIGNAL_ACK, overtaken.signal_id, Status.RECEIVED),  # before its SENT mark
        _row(mine, SIGNAL_SENT, overtaken.signal_id),
        _row(mine, SIGNAL_ACK, acked.signal_id, Status.RECEIVED, at=first),
        _row(mine, SIGNAL_ACK, acked.signal_id, Status.EXECUTED),  # the same signal twice in one batch
        _row(mine, SIGNAL_SENT, expired.signal_id),
        _row(mine, SIGNAL_SENT, foreign.signal_id),  # my session naming their signal
        _row(mine, SIGNAL_ACK, foreign.signal_id, Status.RECEIVED),
    ])  # fmt: skip
    outbound_bookkeeping_apply([_row(mine, SIGNAL_ACK, acked.signal_id, Status.RECEIVED)])  # a repeat, later

    sent, overtaken, acked = (_fresh(mine, TradingSignal, s.pk) for s in (sent, overtaken, acked))
    assert (sent.status, sent.sent_to_ea_at is not None, sent.acked_at) == (lifecycle.SENT, True, None)
    assert (overtaken.status, overtaken.sent_to_ea_at is not None) == (lifecycle.SENT, True)
    assert overtaken.acked_at is not None
    assert (acked.status, acked.acked_at) == (lifecycle.SENT, first)  # the first ACK counts; repeats change nothing
    expired = _fresh(mine, TradingSignal, expired.pk)
    assert (expired.status, expired.sent_to_ea_at) == (lifecycle.PENDING, None)
    foreign = _fresh(theirs, TradingSignal, foreign.pk)
    assert (foreign.status, foreign.sent_to_ea_at, foreign.acked_at) == (lifecycle.PENDING, None, None)


@pytest.mark.django_db(databases=["default"])
def test_a_rejection_is_audited_once_and_rows_the_lifecycle_refuses_leave_the_rest_of_the_batch_applied():
    account = _account()
    refused = _signal(account, status=lifecycle.SENT)
    cancelled = _signal(account, status=lifecycle.CANCELLED, is_valid=False)
    late = _signal(account, status=lifecycle.CANCELLED, is_valid=False)
    fine = _signal(account)
    batch = [
        _row(account, SIGNAL_ACK, refused.signal_id, Status.REJECTED, "price out of range"),
        _row(account, SIGNAL_ACK, cancelled.signal_id, Status.REJECTED, "too late"),  # CANCELLED → REJECTED: no
        _row(account, SIGNAL_SENT, late.signal_id),  # CANCELLED → SENT: no
        _row(account, SIGNAL_SENT, fine.signal_id),
    ]
    outbound_bookkeeping_apply(batch)
    outbound_bookkeeping_apply(batch[:1])  # the EA repeats its REJECTED on a resend

    refused, cancelled, late, fine = (_fresh(account, TradingSignal, s.pk) for s in (refused, cancelled, late, fine))
    assert (refused.status, refused.status_reason) == (lifecycle.REJECTED, "EA: price out of range")
    assert (cancelled.status, late.status, late.sent_to_ea_at) == (lifecycle.CANCELLED, lifecycle.CANCELLED, None)
    assert cancelled.acked_at is not None  # it did reach the EA
    assert fine.status == lifecycle.SENT
    with tenant_context(account.tenant_id):
        audited = list(AuditLog.objects.filter(event_type="signal_rejected").values_list("metadata", flat=True))
    assert audited == [{"signal_id": str(refused.signal_id), "old_status": "sent", "new_status": "rejected",
                        "reason": "EA: price out of range", "actor": "ea"}]  # fmt: skip


@pytest.mark.django_db(databases=["default"])
def test_an_ea_rejected_signal_is_no_longer_valid():
    """Issue 19: the EA's refusal went around the lifecycle service and left `is_valid` true, so the signal still
    looked live to every reader that filters on it."""
    account = _account()
    for status in (Status.REJECTED, Status.FAILED):
        signal = _signal(account, status=lifecycle.SENT)

        outbound_bookkeeping_apply([_row(account, SIGNAL_ACK, signal.signal_id, status, "no money")])

        signal = _fresh(account, TradingSignal, signal.pk)
        assert (signal.status, signal.is_valid, signal.acked_at is not None) == (lifecycle.REJECTED, False, True)


@pytest.mark.django_db(databases=["default"])
def test_command_acks_end_at_executed_or_the_last_answer_and_never_touch_another_tenant():
    mine, theirs = _account(), _account()

    def issue(account):
        return command_issue(tenant_id=account.tenant_id, account_id=account.account_id, kind="reconnect",
                             issued_by="test")  # fmt: skip

    received, executed, failed, foreign = issue(mine), issue(mine), issue(mine), issue(theirs)
    outbound_bookkeeping_apply([
        _row(mine, COMMAND_ACK, received.command_id, Status.RECEIVED),
        _row(mine, COMMAND_ACK, executed.command_id, Status.RECEIVED),
        _row(mine, COMMAND_ACK, executed.command_id, Status.EXECUTED),
        _row(mine, COMMAND_ACK, executed.command_id, Status.FAILED, "late noise"),
        _row(mine, COMMAND_ACK, failed.command_id, Status.FAILED, "10019"),
        _row(mine, COMMAND_ACK, foreign.command_id, Status.EXECUTED),
    ])  # fmt: skip
    outbound_bookkeeping_apply([_row(mine, COMMAND_ACK, executed.command_id, Status.RECEIVED)])

    got = {c: _fresh(mine, EACommand, c.pk) for c in (received, executed, failed)}
    assert [(got[c].status, got[c].reason) for c in (received, executed, failed)] == [
        ("sent", ""), ("executed", ""), ("failed", "10019"),
    ]  # fmt: skip
    foreign = _fresh(theirs, EACommand, foreign.pk)
    assert (foreign.status, foreign.acked_at) == ("pending", None)


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
async def test_an_ack_over_the_socket_is_committed_by_the_flush_and_the_signal_is_not_resent_on_reconnect(ea_account):
    _tenant, account, secret = ea_account
    signal_id = (await database_sync_to_async(make_signal)(account)).signal_id
    communicator, _ = await connect(account, secret)
    delivered = await receive_until(communicator, binproto.TradingSignal)
    assert delivered.signal_id == signal_id
    for ref_id in (uuid.uuid4(), signal_id):  # an id nobody issued is ignored
        await communicator.send_to(bytes_data=binproto.encode(binproto.Ack(
            acked_type=binproto.MsgType.TRADING_SIGNAL, ref_id=ref_id, ref_version=0, status=Status.RECEIVED,
            reason_code=0, reason="")))  # fmt: skip
    query = (
        "SELECT status, sent_to_ea_at IS NOT NULL, acked_at IS NOT NULL FROM mt5_trading_signals WHERE signal_id = %s"
    )
    deadline = time.monotonic() + 5
    while (state := await database_sync_to_async(rows)(query, [signal_id])) != [("sent", True, True)]:
        assert time.monotonic() < deadline, state
        await outbound_flush()
    await communicator.disconnect()
    again, _ = await connect(account, secret)
    await receive_until(again, binproto.ConfigUpdate)
    assert await again.receive_nothing(timeout=0.3)  # acknowledged: not part of the resync
    await again.disconnect()


def _fenced(account, kind, ref_id, epoch, status=None) -> OutboundRow:
    return OutboundRow(str(account.tenant_id), kind, ref_id, timezone.now(), status, "", str(account.account_id), epoch)


def _round_trips(batch: list[OutboundRow]) -> int:
    """Statements sent to the database while the batch is applied (each one query string: one round trip)."""
    sent = []

    def counted(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connections[SERVICE].execute_wrapper(counted):
        outbound_bookkeeping_apply(batch)
    return len(sent)


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
def test_a_batch_takes_the_same_round_trips_for_five_tenants_as_for_one():
    """Issue 21: a setting, a lock and two updates per tenant made a batch's round trips grow with its tenants; in
    production each trader is a tenant, so a batch's SENT marks and ACKs touch about as many tenants as rows."""
    accounts = [_account() for _ in range(6)]
    signals = [_signal(account) for account in accounts]

    def batch(pairs):
        return [row for account, signal in pairs for row in (
            _fenced(account, SIGNAL_SENT, signal.signal_id, 0), _fenced(account, SIGNAL_ACK, signal.signal_id, 0,
                                                                        Status.RECEIVED),
        )]  # fmt: skip

    one = _round_trips(batch(list(zip(accounts[:1], signals[:1], strict=True))))
    five = _round_trips(batch(list(zip(accounts[1:], signals[1:], strict=True))))

    assert one == five == 2  # the account rows locked; then every tenant's marks
    for account, signal in zip(accounts, signals, strict=True):
        signal = _fresh(account, TradingSignal, signal.pk)
        assert (signal.status, signal.sent_to_ea_at is not None, signal.acked_at is not None) == (
            lifecycle.SENT, True, True,
        )  # fmt: skip


@pytest.mark.django_db(databases=["default"])
def test_rows_of_a_replaced_session_are_dropped_per_tenant_and_the_callers_tenant_context_is_put_back():
    live, replaced = _account(), _account()
    with tenant_context(replaced.tenant_id):
        MT5Account.objects.filter(pk=replaced.pk).update(live_session_epoch=2)  # a newer session claimed it
    live_signal, replaced_signal = _signal(live), _signal(replaced)
    live_command = command_issue(tenant_id=live.tenant_id, account_id=live.account_id, kind="reconnect",
                                 issued_by="test")  # fmt: skip

    with tenant_context(live.tenant_id):  # a caller's transaction and tenant
        outbound_bookkeeping_apply([
            _fenced(replaced, SIGNAL_SENT, replaced_signal.signal_id, 1),  # sent by the session it replaced
            _fenced(replaced, SIGNAL_ACK, replaced_signal.signal_id, 1, Status.REJECTED),
            _fenced(live, SIGNAL_SENT, live_signal.signal_id, 0),
            _fenced(live, COMMAND_ACK, live_command.command_id, 0, Status.EXECUTED),
        ])  # fmt: skip
        assert current_tenant() == live.tenant_id

    replaced_signal = _fresh(replaced, TradingSignal, replaced_signal.pk)
    assert (replaced_signal.status, replaced_signal.acked_at) == (lifecycle.PENDING, None)
    assert _fresh(live, TradingSignal, live_signal.pk).status == lifecycle.SENT
    assert _fresh(live, EACommand, live_command.pk).status == "executed"
