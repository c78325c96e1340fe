"""Read-only admin for what EAs sent and were sent: trades (and each day's realised profit), balances, heartbeats,
trade events, the 5-minute rollup, commands. Operators act through the MT5 account actions (accounts/admin.py), never
by editing these rows."""

from __future__ import annotations

from django.contrib import admin

from suho.admin_site import ReadOnlyAdmin
from trading.models import (
    AccountDailyPnl,
    BalanceRollup,
    BalanceSnapshot,
    EACommand,
    Heartbeat,
    TradeEvent,
    TradeOrder,
)


class TimeSeriesAdmin(ReadOnlyAdmin):
    """Read-only rows of an account's time series."""

    show_full_result_count = False  # time series: no second count(*) over the whole table
    list_select_related = ("tenant", "account")


@admin.register(TradeOrder)
class TradeOrderAdmin(TimeSeriesAdmin):
    list_display = ("time", "tenant", "account", "ticket", "symbol", "order_type", "volume", "open_price", "status",
                    "close_time", "close_reason", "profit", "signal_id")  # fmt: skip
    list_filter = ("status", "close_reason", "symbol", "tenant")
    search_fields = ("ticket", "symbol", "account__name", "=signal__signal_id")
    date_hierarchy = "time"


@admin.register(AccountDailyPnl)
class AccountDailyPnlAdmin(TimeSeriesAdmin):
    """What the risk gate's daily-loss check reads: each day's realised profit, kept as orders close."""

    list_display = ("day", "tenant", "account", "realized", "closed_trades")
    list_filter = ("tenant",)
    search_fields = ("account__name", "=account__account_number")
    date_hierarchy = "day"


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(TimeSeriesAdmin):
    list_display = ("time", "tenant", "account", "balance", "equity", "margin_level", "floating_pnl",
                    "open_positions", "drawdown")  # fmt: skip
    list_filter = ("tenant",)
    search_fields = ("account__name", "=account__account_number")
    date_hierarchy = "time"


@admin.register(BalanceRollup)
class BalanceRollupAdmin(TimeSeriesAdmin):
    list_display = ("bucket", "tenant", "account", "balance", "equity", "avg_margin_level", "samples")
    list_filter = ("tenant",)
    search_fields = ("account__name",)
    date_hierarchy = "bucket"


@admin.register(Heartbeat)
class HeartbeatAdmin(TimeSeriesAdmin):
    list_display = ("time", "tenant", "account", "status", "latency_ms", "connection_quality", "terminal_connected",
                    "trade_allowed", "error_count", "last_error_message")  # fmt: skip
    list_filter = ("status", "terminal_connected", "trade_allowed", "tenant")
    search_fields = ("account__name", "last_error_message")
    date_hierarchy = "time"


@admin.register(TradeEvent)
class TradeEventAdmin(TimeSeriesAdmin):
    list_display = ("event_time", "tenant", "account", "ticket", "kind", "event_seq", "received_at", "session_id")
    list_filter = ("kind", "tenant")
    search_fields = ("ticket", "account__name")
    date_hierarchy = "event_time"


@admin.register(EACommand)
class EACommandAdmin(TimeSeriesAdmin):
    list_display = ("created_at", "tenant", "account", "kind", "status", "issued_by", "reason", "sent_at", "acked_at",
                    "valid_until")  # fmt: skip
    list_filter = ("kind", "status", "tenant")
    search_fields = ("account__name", "issued_by", "reason", "=command_id")
    date_hierarchy = "created_at"
