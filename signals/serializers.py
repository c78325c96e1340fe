"""Signal JSON in and out (seed §5.2): the producer's request and the recorded signal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID

from django.core import signing
from django.utils import timezone
from rest_framework import serializers
from rest_framework.serializers import BaseSerializer

from signals.models import TradingSignal
from signals.services import SignalSpec
from suho.edge import date_bounded


class FieldsCopiedOnce:
    """DRF gives each serializer instance its own fields by deep-copying the class's, which re-runs every field's
    __init__ (a ModelSerializer even builds them from the model again): ~8 % of a signal POST's CPU (issue 21).
    Here they are built once per class, and each instance gets a shallow copy of each, which `bind()` then makes
    its own. For flat fields only: none of these holds per-request state before it is bound or nests a serializer
    (a DictField's child is stateless and shared). The copy is `copy.copy`'s, made directly (`_field_copy`)."""

    _field_templates: ClassVar[dict | None] = None

    def get_fields(self) -> dict:
        cls = type(self)
        templates = cls.__dict__.get("_field_templates")
        if templates is None:
            templates = super().get_fields()
            nested = [name for name, field in templates.items() if _nests_a_serializer(field)]
            if nested:  # a nested serializer's state would be shared by every instance: not for this class
                raise TypeError(f"{cls.__name__}: FieldsCopiedOnce needs flat fields; {nested} nest a serializer")
            cls._field_templates = templates
        return {name: _field_copy(field) for name, field in templates.items()}

    def is_valid(self, *, raise_exception=False):
        try:
            return super().is_valid(raise_exception=raise_exception)
        finally:
            self.fields_unbind()

    @property
    def data(self):
        data = super().data
        self.fields_unbind()
        return data

    def fields_unbind(self) -> None:
        """Once this instance's work is done (validated, or `data` taken: both unbind): a bound field and its
        serializer refer to each other, so its fields would wait for CPython's cyclic collector, whose pauses hold
        every thread of the process (issue 21); unbound, they are freed as soon as the request lets go of them.
        `fields` is built again, bound, if anything asks for it later."""
        fields = self.__dict__.pop("fields", None)
        for field in (fields or {}).values():
            field.parent = None


def _field_copy(field):
    """What `copy.copy(field)` gives a DRF field (a new instance with the same attributes: fields define no
    `__copy__`, `__reduce__` or `__slots__`), a quarter of its cost: `copy.copy` goes by way of `__reduce_ex__`,
    and a signal POST copies 48 fields (issue 21)."""
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


def _nests_a_serializer(field) -> bool:
    return isinstance(field, BaseSerializer) or isinstance(getattr(field, "child", None), BaseSerializer)


def _number(**kwargs) -> serializers.DecimalField:
    """Any finite number; places and ranges are the service's rules (precise errors), not the parser's."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class SignalInputSerializer(FieldsCopiedOnce, serializers.Serializer):
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


class SignalOutputSerializer(FieldsCopiedOnce, serializers.ModelSerializer):
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


FEEDBACK_CURSOR_SALT = "suho.signals.feedback-cursor"
FEEDBACK_CURSOR_INVALID = "is not a cursor this API issued (pass `next_cursor` from the previous page unchanged)."
FEEDBACK_RANGE_INVALID = "`start` must be before `end`."
FEEDBACK_PAGE_MAX = 1000


def feedback_cursor(row: dict) -> str:
    """The opaque position after `row`: its (signal time, signal id), signed so a forged or truncated cursor is a
    clear 400 rather than a silently different page. It holds no tenant: another tenant's key reads its own rows."""
    return signing.dumps([row["signal_time"].isoformat(), str(row["signal_id"])], salt=FEEDBACK_CURSOR_SALT,
                         compress=True)  # fmt: skip


class FeedbackQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, validators=[date_bounded],
                                      help_text="Signal time from (inclusive); default: the earliest.")  # fmt: skip
    end = serializers.DateTimeField(required=False, validators=[date_bounded],
                                    help_text="Signal time before (exclusive); default: now.")  # fmt: skip
    strategy = serializers.CharField(max_length=64, required=False, help_text="Only this `strategy_name`.")
    cursor = serializers.CharField(max_length=500, required=False,
                                   help_text="`next_cursor` of the previous page (same filters).")  # fmt: skip
    limit = serializers.IntegerField(min_value=1, max_value=FEEDBACK_PAGE_MAX, default=500)

    def validate_cursor(self, value: str) -> tuple:
        try:
            signal_time, signal_id = signing.loads(value, salt=FEEDBACK_CURSOR_SALT)
            return datetime.fromisoformat(signal_time), UUID(signal_id)
        except (signing.BadSignature, ValueError, TypeError) as exc:
            raise serializers.ValidationError(FEEDBACK_CURSOR_INVALID) from exc

    def validate(self, attrs: dict) -> dict:
        attrs.setdefault("start", datetime(2000, 1, 1, tzinfo=UTC))
        attrs.setdefault("end", timezone.now())
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError(FEEDBACK_RANGE_INVALID)
        return attrs


def _decimal(digits: int, places: int, **kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=digits, decimal_places=places, allow_null=True, coerce_to_string=False,
                                    **kwargs)  # fmt: skip


class FeedbackRowSerializer(serializers.Serializer):
    """One closed execution with its signal: seed §7.3's columns, plus what an incremental reader needs."""

    class Meta:
        ref_name = "MLFeedbackRow"

    signal_id = serializers.UUIDField()
    signal_time = serializers.DateTimeField()
    account_id = serializers.UUIDField()
    symbol = serializers.CharField()
    action = serializers.CharField()
    model_version = serializers.CharField(allow_blank=True)
    strategy_name = serializers.CharField(allow_blank=True)
    confidence_score = _decimal(5, 4)
    polygon_ask = _decimal(20, 8)
    price_deviation = _decimal(20, 8)
    deviation_pips = _decimal(12, 2)
    execution_id = serializers.UUIDField()
    actual_entry_price = _decimal(20, 8)
    execution_slippage = _decimal(20, 8, help_text="actual − signal entry, price units")
    slippage_pips = _decimal(12, 2)
    execution_latency_ms = serializers.IntegerField(allow_null=True)
    profit = _decimal(20, 2)
    profit_pips = _decimal(12, 2)
    trade_result = serializers.ChoiceField(choices=["WIN", "LOSS", "BREAKEVEN"])
    market_volatility = _decimal(12, 6)
    spread_at_execution = _decimal(10, 2)
    closed_at = serializers.DateTimeField(allow_null=True)
    feedback_status = serializers.CharField(help_text="`included_in_training` once an export has taken the row.")
    exported_at = serializers.DateTimeField(allow_null=True)


class FeedbackPageSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MLFeedbackPage"

    results = FeedbackRowSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null: the end.")
