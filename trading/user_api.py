"""REST edges for traders over the gateway's and the signals' rows: balances (raw and 5-minute), trades,
executions, feedback. In `trading`, the top layer, because they read those apps (docs/dependencies.md); the
accounts' own endpoints and the base view are accounts/user_api.py.

Thin: validate the query, run one selector inside the caller's tenant context, serialize.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.user_api import ERRORS, UserApiView
from signals import selectors as signal_selectors
from signals.models import SignalExecution
from suho.edge import date_bounded
from trading import selectors
from trading.models import BalanceRollup, BalanceSnapshot, TradeOrder

RANGE_INVALID = "`start` must be before `end`."
RANGE_TOO_LONG = "At most {days} days per request."
MAX_RANGE_DAYS = 92


class RangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, validators=[date_bounded],
                                      help_text="Default: 24 hours before `end`.")  # fmt: skip
    end = serializers.DateTimeField(required=False, validators=[date_bounded], help_text="Default: now.")

    def validate(self, data):
        data["end"] = data.get("end") or timezone.now()
        data["start"] = data.get("start") or data["end"] - timedelta(days=1)
        if data["start"] >= data["end"]:
            raise serializers.ValidationError(RANGE_INVALID)
        if data["end"] - data["start"] > timedelta(days=MAX_RANGE_DAYS):
            raise serializers.ValidationError(RANGE_TOO_LONG.format(days=MAX_RANGE_DAYS))
        return data


class BalanceQuerySerializer(RangeSerializer):
    resolution = serializers.ChoiceField(choices=["raw", "5min"], default="5min")


class TradeQuerySerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=TradeOrder.Status.choices, required=False)
    since = serializers.DateTimeField(required=False, validators=[date_bounded])
    until = serializers.DateTimeField(required=False, validators=[date_bounded])


class BalanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = BalanceSnapshot
        fields = ("time", "balance", "equity", "margin", "free_margin", "margin_level", "floating_pnl",
                  "open_positions", "daily_pnl", "drawdown")  # fmt: skip


class BalanceRollupSerializer(serializers.ModelSerializer):
    class Meta:
        model = BalanceRollup
        fields = ("bucket", "balance", "equity", "avg_margin_level", "samples")


class TradeSerializer(serializers.ModelSerializer):
    class Meta:
        model = TradeOrder
        fields = ("order_id", "time", "ticket", "signal", "symbol", "order_type", "volume", "open_price", "stop_loss",
                  "take_profit", "status", "close_time", "close_price", "close_reason", "profit", "commission",
                  "swap", "comment", "magic_number")  # fmt: skip


class ExecutionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SignalExecution
        exclude = ("tenant",)


class FeedbackQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=90, default=7)


class FeedbackRowSerializer(serializers.Serializer):
    signal_id = serializers.UUIDField()
    model_version = serializers.CharField(allow_blank=True)
    strategy_name = serializers.CharField(allow_blank=True)
    confidence_score = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    polygon_ask = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    actual_entry_price = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    execution_slippage = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    execution_latency_ms = serializers.IntegerField(allow_null=True)
    profit = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    profit_pips = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    trade_result = serializers.CharField()
    market_volatility = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    spread_at_execution = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)


class AccountBalancesApi(UserApiView):
    @extend_schema(
        operation_id="accounts_balances", tags=["Accounts"], parameters=[BalanceQuerySerializer],
        summary="Balance/equity in a time range: raw snapshots or the 5-minute rollup (mt5_balance_5min)",
        responses={200: BalanceRollupSerializer(many=True), **ERRORS},
    )  # fmt: skip
    def get(self, request, account_id):
        query = BalanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        with self.tenant():
            account = self.account(account_id)
            if query.validated_data["resolution"] == "raw":
                rows = selectors.balances(account_id=account.account_id, start=start, end=end)
                return self.page(rows, BalanceSerializer)
            rows = selectors.balance_buckets(account_id=account.account_id, start=start, end=end)
            return self.page(rows, BalanceRollupSerializer)


class AccountTradesApi(UserApiView):
    @extend_schema(operation_id="accounts_trades", tags=["Accounts"], parameters=[TradeQuerySerializer],
                   responses={200: TradeSerializer(many=True), **ERRORS})  # fmt: skip
    def get(self, request, account_id):
        query = TradeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        with self.tenant():
            account = self.account(account_id)
            return self.page(selectors.trades_history(account_id=account.account_id, **query.validated_data),
                             TradeSerializer)  # fmt: skip


class ExecutionListApi(UserApiView):
    class QuerySerializer(serializers.Serializer):
        account_id = serializers.UUIDField(required=False)

    @extend_schema(operation_id="executions_list", tags=["Signals"], parameters=[QuerySerializer],
                   responses={200: ExecutionSerializer(many=True), **ERRORS})  # fmt: skip
    def get(self, request):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        with self.tenant():
            account_id = query.validated_data.get("account_id")
            account = self.account(account_id) if account_id is not None else None
            rows = signal_selectors.executions(account_id=account.account_id if account else None)
            return self.page(rows, ExecutionSerializer)


class FeedbackApi(UserApiView):
    @extend_schema(operation_id="feedback_list", tags=["Signals"], parameters=[FeedbackQuerySerializer],
                   summary="Closed executions not yet used for training (seed §7.3), newest first",
                   responses={200: FeedbackRowSerializer(many=True), **ERRORS})  # fmt: skip
    def get(self, request):
        query = FeedbackQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        with self.tenant():
            return Response(
                FeedbackRowSerializer(signal_selectors.feedback_rows(**query.validated_data), many=True).data
            )
