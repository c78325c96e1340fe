"""The gateway's outbound bookkeeping, batched: "signal sent" marks and the EA's ACKs, applied off the event loop.

Marking a signal SENT and recording an ACK used to cost a thread hop and a transaction each, on the process that
also writes to the sockets: a broadcast to 1,000 EAs spent most of its time there. Now the consumer only appends a
row (no await, no thread), and `trading.gateway.Batcher` applies the rows every ≤ 250 ms in a worker thread: one
transaction per batch, one set-based `UPDATE … FROM unnest(…)` per kind per tenant, under that tenant's context
(row-level security keeps an ACK from touching another tenant's row), every tenant's statements sent together: two
round trips (and the transaction's BEGIN and COMMIT) however many tenants the batch touches. Every rule of the
per-message path holds: PENDING → SENT only for a still-valid PENDING signal, a duplicate ACK changes nothing, a
REJECTED/FAILED signal ACK goes through `signal_ack_record` (lifecycle check on the locked row, audit row). A batch
the database refuses is split in halves until only the refused row is dropped (the Batcher's `_isolate`); the
others are applied. A row of a session that no longer holds its account (another process took it over: decision
0017) is dropped when applied.

Durability: an ACK is in memory until its batch commits (≤ 250 ms plus the write). If the process dies first, the
row still says "not acknowledged" (`acked_at` NULL; a command still PENDING or SENT), so the next connection of that
EA is sent the signal or command again on resync, and the EA, which de-duplicates by id, answers a repeat with its
last ACK for that id (docs/protocol.md section 8): the lost ACK is recorded then. The same holds for a SENT mark,
which the ACK or the execution trigger also make. Nothing on the server waits for an ACK except the resync itself:
`outbound_flush()` runs before each resync reads the database and when an EA disconnects, so a live process does not
resend what it was already told (unless the database is slower than FLUSH_TIMEOUT_S: then the EA answers again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from django.db import connections, transaction
from django.utils import timezone

import binproto
from signals.delivery import signal_ack_record, signals_ack_received_statement, signals_mark_sent_statement
from suho.routers import SERVICE
from suho.sql import statements_in_context, tenant_statement
from suho.tenancy import TENANT_SETTING
from trading.gateway import Batcher, batcher_meter
from trading.outbound import commands_ack_statement

log = logging.getLogger(__name__)
FLUSH_TIMEOUT_S = 2.0
SIGNAL_SENT, SIGNAL_ACK, COMMAND_ACK = "signal_sent", "signal_ack", "command_ack"
REFUSALS = (binproto.AckStatus.REJECTED, binproto.AckStatus.FAILED)


class OutboundRow(NamedTuple):
    tenant_id: str
    kind: str  # SIGNAL_SENT, SIGNAL_ACK or COMMAND_ACK
    ref_id: UUID  # signal_id or command_id
    at: datetime  # when the frame was written (SENT) or the ACK arrived
    status: binproto.AckStatus | None = None
    reason: str = ""
    account_id: str = ""
    epoch: int | None = None  # the sending session's live-session epoch: None = not fenced


def outbound_bookkeeping_apply(rows: list[OutboundRow]) -> int:
    """One transaction for the batch, in a fixed number of round trips whatever the number of tenants in it (issue 21:
    one transaction, a tenant setting and three statements per tenant made the batch's round trips grow with the
    tenants it touched): the account rows of the fenced rows, locked FOR SHARE under each tenant's context (one
    round trip); then, per tenant and in this order, the SENT marks, the signal ACKs and the command ACKs (one round
    trip); then each refusal row by row (audited). Every statement is idempotent, so a batch applied twice (retry,
    isolation) changes nothing more."""
    by_tenant: dict[str, list[OutboundRow]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row)
    tenants = sorted(by_tenant)
    nested = connections[SERVICE].in_atomic_block  # a caller's transaction: its tenant setting is put back after
    with transaction.atomic(using=SERVICE):
        outer, live = _accounts_locked(tenants, by_tenant, nested=nested)
        kept = {tenant_id: _live_only(by_tenant[tenant_id], live.get(tenant_id)) for tenant_id in tenants}
        statements = [statement for tenant_id in tenants for statement in _marks(tenant_id, kept[tenant_id])]
        statements += [("SELECT set_config(%s, %s, true)", [TENANT_SETTING, outer])] if nested else []
        if statements:
            statements_in_context(statements)
        for tenant_id in tenants:
            for row in kept[tenant_id]:
                if row.kind == SIGNAL_ACK and row.status in REFUSALS:
                    signal_ack_record(tenant_id=tenant_id, signal_id=row.ref_id, status=row.status, reason=row.reason)
    return len(rows)


LIVE_ACCOUNTS_SQL = (
    "SELECT account_id::text, live_session_epoch FROM mt5_user_accounts WHERE account_id = ANY(%s::uuid[])"
    " ORDER BY account_id FOR SHARE"
)


def _accounts_locked(tenants: list[str], by_tenant: dict, *, nested: bool) -> tuple[str, dict[str, set]]:
    """One round trip: each tenant's accounts that fenced rows name (the sending session's epoch), locked FOR SHARE
    in order under that tenant's context, before any other lock of the transaction (decision 0017's lock order),
    so a concurrent claim waits for this batch. Returns the caller's tenant setting (when `nested`) and, per tenant,
    its (account, live epoch) pairs."""
    statements = [("SELECT coalesce(current_setting(%s, true), '')", [TENANT_SETTING])] if nested else []
    asked = []
    for tenant_id in tenants:
        accounts = sorted({row.account_id for row in by_tenant[tenant_id] if row.epoch is not None})
        if accounts:
            statements.append(tenant_statement(tenant_id, LIVE_ACCOUNTS_SQL, [accounts]))
            asked.append(tenant_id)
    if not statements:
        return "", {}
    results = statements_in_context(statements)
    outer = results.pop(0)[0][0] if nested else ""
    # each tenant_statement gives two results: its setting's, then the locked rows
    return outer, {tenant_id: set(results[2 * n + 1]) for n, tenant_id in enumerate(asked)}


def _live_only(items: list[OutboundRow], live: set | None) -> list[OutboundRow]:
    """The rows whose session still holds its account (`live`: the locked accounts' (account, epoch) pairs)."""
    if live is None:
        return items
    kept = [row for row in items if row.epoch is None or (row.account_id, row.epoch) in live]
    if len(kept) != len(items):
        log.info("dropped %d SENT marks/ACKs of replaced EA sessions", len(items) - len(kept))
    return kept


def _marks(tenant_id: str, items: list[OutboundRow]) -> list[tuple[str, list]]:
    """The tenant's setting and its set-based statements: SENT marks, ACKs that are not refusals, command ACKs."""
    sent: dict[UUID, datetime] = {}
    received: dict[UUID, datetime] = {}
    commands: dict[UUID, OutboundRow] = {}
    for row in items:
        if row.kind == SIGNAL_SENT:
            sent.setdefault(row.ref_id, row.at)
        elif row.kind == SIGNAL_ACK and row.status not in REFUSALS:
            received.setdefault(row.ref_id, row.at)
        elif row.kind == COMMAND_ACK:
            # Applied one after another, the ACKs of one command end at its first EXECUTED (never overwritten)
            # or else at its last ACK: keep that one.
            kept = commands.get(row.ref_id)
            if kept is None or kept.status != binproto.AckStatus.EXECUTED:
                commands[row.ref_id] = row
    statements = []
    if sent:
        statements.append(signals_mark_sent_statement(tenant_id=tenant_id, signal_ids=list(sent),
                                                      sent_at=list(sent.values())))  # fmt: skip
    if received:
        statements.append(signals_ack_received_statement(tenant_id=tenant_id, signal_ids=list(received),
                                                         acked_at=list(received.values())))  # fmt: skip
    if commands:
        statements.append(commands_ack_statement(
            tenant_id=tenant_id, acks=[(row.ref_id, row.status, row.reason, row.at) for row in commands.values()]
        ))  # fmt: skip
    return [tenant_statement(tenant_id, *statements[0]), *statements[1:]] if statements else []


_batcher = batcher_meter(Batcher("outbound", outbound_bookkeeping_apply, lambda rows: None))


def signal_sent_add(*, tenant_id, signal_id: UUID, account_id=None, epoch: int | None = None) -> None:
    """A TRADING_SIGNAL was written to the EA's socket (call on the event loop; it never blocks). With `epoch`, the
    mark counts only while that session still holds `account_id`."""
    _batcher.add([OutboundRow(str(tenant_id), SIGNAL_SENT, signal_id, timezone.now(), account_id=str(account_id),
                              epoch=epoch)])  # fmt: skip


def ack_add(*, tenant_id, ack: binproto.Ack, account_id=None, epoch: int | None = None) -> None:
    """The EA acknowledged a TRADING_SIGNAL or COMMAND (call on the event loop; it never blocks). Versioned
    messages (risk parameters, configuration) carry no id and are not recorded, as before. With `epoch`, the ACK
    counts only while that session still holds `account_id`."""
    kind = {binproto.MsgType.TRADING_SIGNAL: SIGNAL_ACK, binproto.MsgType.COMMAND: COMMAND_ACK}.get(ack.acked_type)
    if kind is None or ack.ref_id is None:
        return
    _batcher.add([OutboundRow(str(tenant_id), kind, ack.ref_id, timezone.now(), ack.status, ack.reason,
                              str(account_id), epoch)])  # fmt: skip


async def outbound_flush(*, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
    """Commit every SENT mark and ACK received so far (Batcher.flush runs one flush at a time, so a batch the
    background task is writing now is committed too). False when that took longer than `timeout_s` (the database
    is slow or away): the flush goes on in the background, and the caller goes on without the guarantee — at worst
    a resync resends what the EA already answered, and the EA answers it again."""
    if _batcher.idle():  # a HELLO's and a disconnect's usual case: no task, no wait (issue 21: two per EA)
        return True
    try:
        await asyncio.wait_for(asyncio.shield(_batcher.flush()), timeout_s)  # shielded: a flush never loses its rows
    except TimeoutError:
        log.warning("outbound bookkeeping not flushed within %.1f s", timeout_s)
        return False
    return True


def outbound_batcher() -> Batcher:
    """The process's batcher (for its counters: flushed_rows, dropped_rows, last_flush_ms)."""
    return _batcher
