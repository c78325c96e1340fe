"""Signal JSON in and out (seed §5.2): the producer's request and the recorded signal."""

from __future__ import annotations

from rest_framework import serializers

from signals.models import TradingSignal
from signals.services import SignalSpec
from suho.edge import date_bounded


def _number(**kwargs) -> serializers.DecimalField:
    """Any finite number; places and ranges are the service's rules (precise errors), not the parser's."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class SignalInputSerializer(serializers.Serializer):
    """The seed's JSON. `signal_id` is the producer's own id (the idempotency key); `entry_price_range` and the
    `broker_*`/`deviation_pips` metadata are recomputed from the account's broker quote, whatever was sent."""

    class Meta:
        ref_name = "SignalInput"

    signal_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    account_id = serializers.CharField(max_length=64, help_text='An MT5 account id, or "broadcast".')
    symbol = serializers.CharField(max_length=32)
    action = serializers.CharField(max_length=8, help_text="BUY or SELL")
    entry_price = _number(required=False, allow_null=True, default=None)
    entry_price_range = serializers.DictField(required=False, help_text="Ignored: recomputed per account.")
    stop_loss = _number(required=False, allow_null=True, default=None)
    take_profit = _number(required=False, allow_null=True, default=None)
    volume = _number(help_text="Lots")
    model_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    strategy_name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    confidence_score = _number(required=False, allow_null=True, default=None)
    valid_until = serializers.DateTimeField(required=False, allow_null=True, default=None, validators=[date_bounded])
    metadata = serializers.DictField(required=False, default=dict, help_text="polygon_ask/polygon_bid are used.")

    def spec(self) -> SignalSpec:
        data = self.validated_data
        return SignalSpec(
            symbol=data["symbol"],
            action=data["action"],
            volume=data["volume"],
            valid_until=data["valid_until"],
            entry_price=data["entry_price"],
            stop_loss=data["stop_loss"],
            take_profit=data["take_profit"],
            confidence_score=data["confidence_score"],
            model_version=data["model_version"],
            strategy_name=data["strategy_name"],
            metadata=data["metadata"],
        )


DECIMALS = [f.name for f in TradingSignal._meta.get_fields() if f.get_internal_type() == "DecimalField"]


class SignalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = TradingSignal
        ref_name = "Signal"
        fields = [
            "signal_id", "client_signal_id", "broadcast_id", "account_id", "source", "symbol", "action",
            "entry_price", "entry_price_range", "stop_loss", "take_profit", "volume", "sizing_method",
            "model_version", "strategy_name", "confidence_score", "valid_until", "status", "status_reason",
            "original_entry_price", "original_stop_loss", "original_take_profit", "polygon_bid", "polygon_ask",
            "broker_bid", "broker_ask", "price_deviation", "deviation_pips", "metadata", "time", "sent_to_ea_at",
            "acked_at", "executed_at", "closed_at",
        ]  # fmt: skip
        extra_kwargs = {name: {"coerce_to_string": False} for name in DECIMALS}

    entry_price_range = serializers.SerializerMethodField()

    def get_entry_price_range(self, signal: TradingSignal) -> dict | None:
        if signal.entry_price_min is None:
            return None
        return {"min": float(signal.entry_price_min), "max": float(signal.entry_price_max)}


class BroadcastOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SignalBroadcast"

    broadcast_id = serializers.UUIDField()
    signals = SignalOutputSerializer(many=True)


class SignalListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TradingSignal.Status.choices, required=False)
    account_id = serializers.UUIDField(required=False)
    symbol = serializers.CharField(max_length=32, required=False)
