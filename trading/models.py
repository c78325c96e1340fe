"""What an EA reports about its account: balances, heartbeats, trade orders and the trade-event journal."""

from __future__ import annotations

import uuid

from django.db import models

from suho.fields import account_fk, money, price, tenant_fk, volume


class BalanceSnapshot(models.Model):
    """Account finance every ~30 s (seed §2.1 item 2). Time series: 1 h chunks, 2 years."""

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    tenant = tenant_fk()
    account = account_fk()
    balance = money()
    equity = money()
    margin = money(default=0)
    free_margin = money(default=0)
    margin_level = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    floating_pnl = money(default=0)
    open_positions = models.PositiveIntegerField(default=0)
    pending_orders = models.PositiveIntegerField(default=0)
    daily_pnl = money(default=0)
    drawdown = models.DecimalField(max_digits=8, decimal_places=4, default=0, help_text="Percent from max balance")
    max_balance = money(null=True, blank=True)

    class Meta:
        db_table = "mt5_account_balance_history"
        indexes = [models.Index("tenant", "account", models.F("time").desc(), name="idx_balance_history_acct_time")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.time:%Y-%m-%d %H:%M:%S} balance {self.balance}"


class Heartbeat(models.Model):
    """EA heartbeat every ~30 s (seed §2.1 item 5). Time series: 1 h chunks, 30 days."""

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    tenant = tenant_fk()
    account = account_fk()
    user_id = models.UUIDField(null=True, blank=True)
    session_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=20, default="online")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    connection_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    uptime_s = models.BigIntegerField(null=True, blank=True)
    mt5_build = models.PositiveIntegerField(null=True, blank=True)
    terminal_connected = models.BooleanField(default=True)
    trade_allowed = models.BooleanField(default=True)
    error_count = models.PositiveIntegerField(default=0)
    last_error_code = models.IntegerField(null=True, blank=True)
    last_error_message = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "mt5_ea_heartbeat"
        indexes = [models.Index("tenant", "account", models.F("time").desc(), name="idx_heartbeat_acct_time")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.time:%Y-%m-%d %H:%M:%S} {self.status}"


class TradeOrder(models.Model):
    """One MT5 order/position (seed §2.1 item 4), opened then closed in place. Time series: 1 day chunks, 7 years.

    `time` is the open time the EA reported. The trigger `track_signal_execution()` links an order with a
    `signal_id` to its signal; `update_signal_execution_result()` carries the close into the execution.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    class CloseReason(models.TextChoices):
        TAKE_PROFIT = "take_profit"
        STOP_LOSS = "stop_loss"
        MANUAL = "manual"
        SIGNAL_CLOSE = "signal_close"
        STOP_OUT = "stop_out"
        EXPERT = "expert"
        UNKNOWN = "unknown"

    order_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField()
    tenant = tenant_fk()
    account = account_fk()
    ticket = models.BigIntegerField()
    signal = models.ForeignKey(
        "signals.TradingSignal", on_delete=models.SET_NULL, null=True, blank=True, db_index=False, related_name="+"
    )
    symbol = models.CharField(max_length=32)
    order_type = models.CharField(max_length=20)
    volume = volume()
    open_price = price()
    stop_loss = price(null=True, blank=True)
    take_profit = price(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    close_time = models.DateTimeField(null=True, blank=True)
    close_price = price(null=True, blank=True)
    profit = money(null=True, blank=True)
    commission = money(default=0)
    swap = money(default=0)
    close_reason = models.CharField(max_length=20, choices=CloseReason.choices, blank=True)
    comment = models.CharField(max_length=100, blank=True)
    magic_number = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mt5_trade_orders"
        indexes = [
            models.Index(
                "tenant",
                "account",
                "status",
                models.F("time").desc(),
                name="idx_trade_orders_open_trades",
                condition=models.Q(status="open"),
            ),
            models.Index("tenant", "account", "ticket", name="idx_trade_orders_ticket"),
            models.Index("tenant", "signal", name="idx_trade_orders_signal"),
            models.Index("tenant", "account", models.F("close_time").desc(), name="idx_trade_orders_close_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(volume__gt=0), name="trade_order_volume_positive"),
            models.CheckConstraint(condition=models.Q(open_price__gt=0), name="trade_order_open_price_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket} {self.order_type} {self.volume} {self.symbol} ({self.status})"


class AccountDailyPnl(models.Model):
    """The realised profit of the trades an account closed on one UTC day, kept by the trigger
    `trade_order_daily_pnl` on every write to mt5_trade_orders (trading 0007, decision 0029). The risk gate reads
    today's row on every signal POST: the order table is chunked by open time, so "closed today" cannot be pruned
    and read every partition or chunk (with a year of 1-day chunks on TimescaleDB, ~60 ms per POST)."""

    tenant = tenant_fk()
    account = account_fk()
    day = models.DateField()
    realized = money(default=0)
    closed_trades = models.IntegerField(default=0, help_text="Closed trades with a profit in `realized`")

    class Meta:
        db_table = "mt5_account_daily_pnl"
        verbose_name = "account daily P&L"
        constraints = [models.UniqueConstraint("account", "day", name="account_daily_pnl_account_day")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day}: {self.realized} ({self.closed_trades} closed)"


class TradeEvent(models.Model):
    """The journal of trade events as received: what makes a replayed or duplicated event a no-op.

    Not partitioned, so the uniqueness of (account, ticket, kind) holds over all time; the order table is. A close
    that arrives before its open creates the order already closed (it carries the open's fields).
    """

    class Kind(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"
        MODIFY = "modify"

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_fk()
    account = account_fk()
    ticket = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    event_seq = models.BigIntegerField(help_text="The EA's own sequence number for the event")
    event_time = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    session_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField(default=dict)

    class Meta:
        db_table = "mt5_trade_events"
        constraints = [
            models.UniqueConstraint(
                "tenant",
                "account",
                "ticket",
                "kind",
                condition=models.Q(kind__in=["open", "close"]),
                name="trade_event_once_per_ticket",
            ),
            models.UniqueConstraint(
                "tenant", "account", "ticket", "kind", "event_seq", name="trade_event_once_per_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket} {self.kind} seq {self.event_seq}"


class BalanceRollup(models.Model):
    """The seed's `mt5_balance_5min` as a table under RLS, refreshed incrementally by a task (ARCHITECTURE §6).

    TimescaleDB refuses a continuous aggregate on a hypertable with row security, so both paths use this.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_fk()
    account = account_fk()
    bucket = models.DateTimeField()
    balance = money()
    equity = money()
    avg_margin_level = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "mt5_balance_5min"
        constraints = [
            models.UniqueConstraint("tenant", "account", "bucket", name="balance_5min_one_row_per_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.bucket:%Y-%m-%d %H:%M} equity {self.equity}"


class EACommand(models.Model):
    """A control command for an EA (seed §2.2 item 4). Kept until the EA acknowledges it or it expires, so an EA
    that was offline receives it on reconnect."""

    class Kind(models.TextChoices):
        CLOSE_ALL = "close_all"
        DISABLE_TRADING = "disable_trading"
        ENABLE_TRADING = "enable_trading"
        MODIFY_ORDER = "modify_order"
        RECONNECT = "reconnect"
        RESTART_EA = "restart_ea"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        EXECUTED = "executed"
        FAILED = "failed"
        EXPIRED = "expired"

    command_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = tenant_fk()
    account = account_fk()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    ticket = models.BigIntegerField(null=True, blank=True)
    stop_loss = price(null=True, blank=True)
    take_profit = price(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    issued_by = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    valid_until = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mt5_ea_commands"
        verbose_name = "EA command"
        indexes = [models.Index("tenant", "account", "status", name="idx_ea_commands_pending")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status})"


class BridgeApplied(models.Model):
    """Batches the data bridge has committed, by message id: written in the same transaction as their rows, so a
    message redelivered after a crash between commit and ack is recognised and applied exactly once. Pruned once the
    stream can no longer deliver them (trading.bridge.bridge_applied_prune)."""

    msg_id = models.CharField(max_length=100, unique=True)
    stream = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    applied_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "suho_bridge_applied"

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.msg_id}"
