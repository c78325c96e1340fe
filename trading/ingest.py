"""Ingest of what an EA reports (seed §2.1): volume rows in batches, money events one transaction each.

Volume (quotes, balances, heartbeats) arrives as batches, from the gateway's batcher (direct mode) or the data
bridge: `VOLUME_KINDS` is how each kind is written, for both. Trade events and the profile are written in their own
transaction, idempotently, and only acknowledged to the EA after commit. NATS publishing
happens after commit, on the seed's subjects `mt5.account.{account_id}.*`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import NamedTuple
from uuid import UUID

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

import binproto
from accounts.models import MT5Account
from quotes.ingest import TickRow, broker_quotes_after_commit, broker_quotes_insert, broker_quotes_live
from suho.bus import PubBlock, get_bus
from suho.cache import BALANCE_TTL_S, POSITIONS_TTL_S, balance_key, cache_delete, cache_set_many, positions_key
from suho.clock import sql_us_to_timestamptz, us_to_datetime
from suho.outbox import outbox_publish_on_commit
from suho.routers import SERVICE
from suho.sql import retried_on_deadlock
from suho.tenancy import TENANT_SETTING, tenant_context
from trading.connection import ea_session_is_live
from trading.models import TradeEvent, TradeOrder

TRADE_EVENT_KIND = {
    binproto.TradeOpened: TradeEvent.Kind.OPEN,
    binproto.TradeClosed: TradeEvent.Kind.CLOSE,
    binproto.TradeModified: TradeEvent.Kind.MODIFY,
}
ACCEPTED, DUPLICATE, REPLACED = "accepted", "duplicate", "replaced"


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"))


def _price(value: float) -> Decimal | None:
    return Decimal(repr(value)).quantize(Decimal("0.00000001")) if value else None


# --- volume: balances and heartbeats ------------------------------------------------------------------------------


class BalanceRow(NamedTuple):
    time_us: int
    tenant_id: str
    account_id: str
    balance: float
    equity: float
    margin: float
    free_margin: float
    margin_level: float
    floating_pnl: float
    open_positions: int
    pending_orders: int
    daily_pnl: float
    drawdown: float
    max_balance: float


class HeartbeatRow(NamedTuple):
    time_us: int
    tenant_id: str
    account_id: str
    session_id: str
    status: str
    latency_ms: int
    uptime_s: int
    mt5_build: int
    terminal_connected: bool
    trade_allowed: bool
    error_count: int
    last_error_code: int
    last_error_message: str


INSERT_BALANCES = f"""
INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance, equity, margin, free_margin,
    margin_level, floating_pnl, open_positions, pending_orders, daily_pnl, drawdown, max_balance)
SELECT {sql_us_to_timestamptz("t")}, tenant, account, round(balance::numeric, 2), round(equity::numeric, 2),
       round(margin::numeric, 2), round(free::numeric, 2), round(level::numeric, 2), round(floating::numeric, 2),
       positions, pending, round(daily::numeric, 2), round(drawdown::numeric, 4), round(max_balance::numeric, 2)
FROM unnest(%s::bigint[], %s::uuid[], %s::uuid[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
            %s::float8[], %s::float8[], %s::int[], %s::int[], %s::float8[], %s::float8[], %s::float8[])
     AS t(t, tenant, account, balance, equity, margin, free, level, floating, positions, pending, daily, drawdown,
          max_balance)
"""

INSERT_HEARTBEATS = f"""
INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, session_id, status, latency_ms, uptime_s, mt5_build,
    terminal_connected, trade_allowed, error_count, last_error_code, last_error_message)
SELECT {sql_us_to_timestamptz("t")}, tenant, account, session, status, latency, uptime, build, connected, allowed,
       errors, code, message
FROM unnest(%s::bigint[], %s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::int[], %s::bigint[], %s::int[],
            %s::boolean[], %s::boolean[], %s::int[], %s::int[], %s::text[])
     AS t(t, tenant, account, session, status, latency, uptime, build, connected, allowed, errors, code, message)
"""

# The account rows are locked in account_id order before the update (the order `outbound_batch` takes them FOR
# SHARE): an UPDATE … FROM locks rows in whatever order its join yields them, and two transactions that lock the
# same rows in different orders deadlock. A batch committed after its EA's disconnect (buffered by then) leaves the
# account offline (trading migration 0009).
MARK_ONLINE = f"""
WITH s AS (SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[]) AS s(account, t, message)),
locked AS (SELECT account_id FROM mt5_user_accounts WHERE account_id IN (SELECT account FROM s)
           ORDER BY account_id FOR NO KEY UPDATE)
UPDATE mt5_user_accounts AS a SET connection_status = 'online', last_heartbeat_at = {sql_us_to_timestamptz("s.t")},
       last_ea_error = s.message
FROM s
WHERE a.account_id = s.account AND a.account_id IN (SELECT account_id FROM locked)
  AND a.disconnected_epoch IS DISTINCT FROM a.live_session_epoch
"""


@retried_on_deadlock
def _insert_grouped(sql: str, rows: list, after=None) -> None:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row.tenant_id, []).append(row)
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        for tenant_id, group in sorted(groups.items()):  # tenants in one order, as their account rows (MARK_ONLINE)
            cursor.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, tenant_id])
            cursor.execute(sql, [list(column) for column in zip(*group, strict=True)])
            if after is not None:
                after(cursor, group)


def balances_insert(rows: list[BalanceRow]) -> int:
    if rows:
        _insert_grouped(INSERT_BALANCES, rows)
    return len(rows)


def balances_after_commit(rows: list[BalanceRow]) -> None:
    latest = {row.account_id: row for row in rows}
    cache_set_many(
        [
            (balance_key(account_id), BALANCE_TTL_S,
             {"balance": row.balance, "equity": row.equity, "margin_level": row.margin_level,
              "floating_pnl": row.floating_pnl, "timestamp": us_to_datetime(row.time_us).isoformat()})
            for account_id, row in latest.items()
        ]
    )  # fmt: skip
    get_bus().publish_many(
        [(f"mt5.account.{row.account_id}.balance", json.dumps(row._asdict()).encode()) for row in rows]
    )


def _mark_online(cursor, group: list[HeartbeatRow]) -> None:
    latest = {row.account_id: row for row in group}
    cursor.execute(
        MARK_ONLINE,
        [list(latest), [row.time_us for row in latest.values()],
         [row.last_error_message for row in latest.values()]],
    )  # fmt: skip


def heartbeats_insert(rows: list[HeartbeatRow]) -> int:
    if rows:
        _insert_grouped(INSERT_HEARTBEATS, rows, after=_mark_online)
    return len(rows)


def heartbeats_after_commit(rows: list[HeartbeatRow]) -> None:
    get_bus().publish_many(
        [(f"mt5.account.{row.account_id}.heartbeat", json.dumps(row._asdict()).encode()) for row in rows]
    )


class VolumeKind(NamedTuple):
    """How one kind of volume row is written: its row type (the bridge rebuilds rows from JSON lists), its set-based
    insert, its work after commit (cache, NATS) and, for ticks, the NATS messages the gateway publishes as soon as
    it decodes them (before the batch is stored, in either ingest mode)."""

    row: type
    insert: Callable[[list], int]
    after_commit: Callable[[list], None]
    live: Callable[[list], PubBlock] | None = None


VOLUME_KINDS: dict[str, VolumeKind] = {  # the one table of both ingest paths: the gateway's batcher and the bridge
    "quotes": VolumeKind(TickRow, broker_quotes_insert, broker_quotes_after_commit, live=broker_quotes_live),
    "balances": VolumeKind(BalanceRow, balances_insert, balances_after_commit),
    "heartbeats": VolumeKind(HeartbeatRow, heartbeats_insert, heartbeats_after_commit),
}


# --- profile and positions ----------------------------------------------------------------------------------------


def profile_update(
    *, tenant_id: UUID, account_id: UUID, profile: binproto.AccountProfile, epoch: int | None = None
) -> bool:
    """The EA's account profile (seed §2.1 item 1) onto the account row; published after commit. With `epoch`, only
    while that session still holds the account (one conditional update: decision 0017); False = nothing written."""
    with tenant_context(tenant_id):
        accounts = MT5Account.objects.filter(account_id=account_id)
        if epoch is not None:
            accounts = accounts.filter(live_session_epoch=epoch)
        updated = accounts.update(
            account_number=profile.login,
            broker=profile.broker,
            server=profile.server,
            account_type="live" if profile.account_type == binproto.AccountType.LIVE else "demo",
            currency=profile.currency,
            leverage=profile.leverage,
            ea_version=profile.ea_version,
            ea_settings_reported=dict(profile.settings),
            profile_updated_at=timezone.now(),
        )
        if not updated:
            return False
        outbox_publish_on_commit(
            tenant_id=tenant_id,
            subject=f"mt5.account.{account_id}.profile",
            payload=binproto.to_json(profile).encode(),
            msg_id=f"profile:{account_id}:{profile.timestamp_us}",
        )
    return True


def positions_cache_write(*, account_id: UUID, positions: binproto.Positions) -> None:
    value = [
        {"ticket": p.ticket, "symbol": p.symbol, "type": p.order_type.name.lower(), "volume": p.volume,
         "open_price": p.open_price, "sl": p.stop_loss, "tp": p.take_profit, "profit": p.profit}
        for p in positions.positions
    ]  # fmt: skip
    cache_set_many([(positions_key(account_id), POSITIONS_TTL_S, value)])


# --- trade events: money ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeEventResult:
    status: str  # ACCEPTED, DUPLICATE or REPLACED (the session no longer holds the account: nothing was written)
    ticket: int
    kind: str


def _order_time_us(*, open_time_us: int, modify_time_us: int, timestamp_us: int) -> int:
    """The time an order row gets (its partition key): the open time, else the first event's own times."""
    return open_time_us or modify_time_us or timestamp_us


def _order_fields(event) -> dict:
    time_us = _order_time_us(
        open_time_us=getattr(event, "open_time_us", 0),
        modify_time_us=getattr(event, "modify_time_us", 0),
        timestamp_us=event.timestamp_us,
    )
    fields = {
        "time": us_to_datetime(time_us),
        "symbol": event.symbol,
        "order_type": event.order_type.name.lower(),
        "volume": Decimal(repr(event.volume)),
        "open_price": _price(getattr(event, "open_price", None) or event.price),
        "stop_loss": _price(event.stop_loss),
        "take_profit": _price(event.take_profit),
        "signal_id": event.signal_id,
    }
    if isinstance(event, binproto.TradeOpened):
        fields |= {"commission": _money(event.commission), "magic_number": event.magic or None}
    if isinstance(event, binproto.TradeClosed):
        fields |= {
            "status": TradeOrder.Status.CLOSED,
            "close_time": us_to_datetime(event.close_time_us or event.timestamp_us),
            "close_price": _price(event.close_price),
            "profit": _money(event.profit),
            "commission": _money(event.commission),
            "swap": _money(event.swap),
            "close_reason": event.close_reason.name.lower(),
        }
    return fields


def _signal_known(signal_id: UUID | None) -> UUID | None:
    """A trade may name a signal we never issued (or of another tenant, invisible under RLS): keep the trade."""
    from signals.models import TradingSignal

    if signal_id is None:
        return None
    return signal_id if TradingSignal.objects.filter(signal_id=signal_id).exists() else None


CLOSE_FIELDS = ("status", "close_time", "close_price", "profit", "commission", "swap", "close_reason")


def _order_locked(*, tenant_id: UUID, account_id: UUID, ticket: int, journal_id: int) -> TradeOrder | None:
    """The ticket's order, locked, looked for in the partition (TimescaleDB: chunk) that holds it. Every order is
    created by its ticket's first journaled event, with that event's time (`_order_fields`): no earlier event, no
    order; otherwise the first event says where it is. Unbounded, the lookup planned and probed every partition of
    the order table's 7 years: with a year of 1-day chunks on TimescaleDB, 70-110 ms per trade event. Orders are
    made here only; one whose time is not its first event's (changed by hand) is still found, unbounded."""
    first = (
        TradeEvent.objects.filter(tenant_id=tenant_id, account_id=account_id, ticket=ticket, pk__lt=journal_id)
        .order_by("pk")
        .values_list("payload", flat=True)
        .first()
    )
    if first is None:
        return None
    orders = TradeOrder.objects.select_for_update().filter(tenant_id=tenant_id, account_id=account_id, ticket=ticket)
    time_us = _order_time_us(
        open_time_us=first.get("open_time_us") or 0,
        modify_time_us=first.get("modify_time_us") or 0,
        timestamp_us=first.get("timestamp") or 0,  # binproto.to_dict's name for timestamp_us
    )
    return (time_us and orders.filter(time=us_to_datetime(time_us)).first()) or orders.first()


@retried_on_deadlock
def trade_event_record(
    *, tenant_id: UUID, account_id: UUID, session_id: UUID | None, event, epoch: int | None = None
) -> TradeEventResult:
    """Journal and apply one trade event, once. A replay returns DUPLICATE and changes nothing; so does (as
    REPLACED) an event of a session whose `epoch` no longer holds the account (decision 0017).

    A close that arrives before its open creates the order already closed (the close carries the open's fields);
    the late open then only joins the journal. Locks the account row (FOR SHARE, first), then the ticket, then the
    account's order rows it touches (`select_for_update`).
    """
    kind = TRADE_EVENT_KIND[type(event)]
    with tenant_context(tenant_id):
        if epoch is not None and not ea_session_is_live(account_id=account_id, epoch=epoch):
            return TradeEventResult(REPLACED, event.ticket, kind)
        with connections[SERVICE].cursor() as cursor:  # one writer per ticket: an open and its close may race
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{account_id}:{event.ticket}"])
        try:
            with transaction.atomic(using=SERVICE):
                journaled = TradeEvent.objects.create(
                    tenant_id=tenant_id, account_id=account_id, ticket=event.ticket, kind=kind,
                    event_seq=event.event_seq, event_time=us_to_datetime(event.timestamp_us),
                    session_id=session_id, payload=binproto.to_dict(event),
                )  # fmt: skip
        except IntegrityError:
            return TradeEventResult(DUPLICATE, event.ticket, kind)
        fields = _order_fields(event)
        fields["signal_id"] = _signal_known(fields["signal_id"])
        order = _order_locked(tenant_id=tenant_id, account_id=account_id, ticket=event.ticket, journal_id=journaled.pk)
        changes = {}
        if order is None:
            TradeOrder.objects.create(tenant_id=tenant_id, account_id=account_id, ticket=event.ticket, **fields)
        elif kind == TradeEvent.Kind.CLOSE and order.status != TradeOrder.Status.CLOSED:
            changes = {name: fields[name] for name in CLOSE_FIELDS}
        elif kind == TradeEvent.Kind.MODIFY and order.status == TradeOrder.Status.OPEN:
            changes = {"stop_loss": fields["stop_loss"], "take_profit": fields["take_profit"]}
        if changes:  # by the whole key, time included: only the order's own partition (TimescaleDB: chunk) is planned
            TradeOrder.objects.filter(tenant_id=tenant_id, order_id=order.order_id, time=order.time).update(
                **changes, updated_at=timezone.now()
            )
        # The cached positions (the EA's last snapshot, or a read-through fill) no longer hold: drop them.
        transaction.on_commit(partial(cache_delete, positions_key(account_id)), using=SERVICE)
        outbox_publish_on_commit(
            tenant_id=tenant_id,
            subject=f"mt5.account.{account_id}.trades.{kind}",
            payload=binproto.to_json(event).encode(),
            msg_id=f"trade:{account_id}:{event.ticket}:{kind}:{event.event_seq}",
        )
    return TradeEventResult(ACCEPTED, event.ticket, kind)
