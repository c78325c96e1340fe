"""Trading signals and their executions: the ML → broker → fill → feedback loop (seed §2.3, §7)."""

from __future__ import annotations

import uuid

from django.db import models

from signals.lifecycle import STATUSES
from suho.fields import account_fk, money, price, tenant_fk, volume


class TradingSignal(models.Model):
    """A signal for one account; its lifecycle (seed §7.1) is enforced here and by a database trigger."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        EXECUTED = "executed"
        CLOSED = "closed"
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    class Action(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"
        CLOSE = "CLOSE"

    class Source(models.TextChoices):
        ML = "ml"
        TRADINGVIEW = "tradingview"
        REFERENCE_MODEL = "reference_model"
        OPERATOR = "operator"

    signal_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField(help_text="Created")
    tenant = tenant_fk()
    account = account_fk()
    client_signal_id = models.CharField(max_length=64, blank=True, help_text="The producer's id: idempotency key")
    broadcast_id = models.UUIDField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ML)
    symbol = models.CharField(max_length=32)
    action = models.CharField(max_length=5, choices=Action.choices)
    entry_price = price(null=True, blank=True)
    entry_price_min = price(null=True, blank=True)
    entry_price_max = price(null=True, blank=True)
    stop_loss = price(null=True, blank=True)
    take_profit = price(null=True, blank=True)
    volume = volume()
    risk_percent = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    sizing_method = models.CharField(max_length=20, default="fixed_lots")
    model_version = models.CharField(max_length=64, blank=True)
    strategy_name = models.CharField(max_length=64, blank=True)
    confidence_score = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    valid_until = models.DateTimeField()
    is_valid = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=300, blank=True)
    # As the producer sent them (reference prices), before broker adjustment (seed §6.3).
    original_entry_price = price(null=True, blank=True)
    original_stop_loss = price(null=True, blank=True)
    original_take_profit = price(null=True, blank=True)
    polygon_bid = price(null=True, blank=True)
    polygon_ask = price(null=True, blank=True)
    broker_bid = price(null=True, blank=True)
    broker_ask = price(null=True, blank=True)
    price_deviation = price(null=True, blank=True)
    deviation_pips = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    sent_to_ea_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mt5_trading_signals"
        indexes = [
            models.Index(
                "tenant",
                models.F("time").desc(),
                name="idx_signals_pending",
                condition=models.Q(status="pending", is_valid=True),
            ),
            models.Index("tenant", "account", "status", "valid_until", name="idx_signals_account_status"),
            models.Index("tenant", models.F("time").desc(), name="idx_signals_tenant_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                "tenant",
                "account",
                "client_signal_id",
                condition=~models.Q(client_signal_id=""),
                name="signal_client_id_once_per_account",
            ),
            models.CheckConstraint(condition=models.Q(volume__gt=0), name="signal_volume_positive"),
            models.CheckConstraint(condition=models.Q(status__in=list(STATUSES)), name="signal_status_known"),
            models.CheckConstraint(
                condition=models.Q(confidence_score__isnull=True)
                | models.Q(confidence_score__gte=0, confidence_score__lte=1),
                name="signal_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.volume} {self.symbol} ({self.status})"


class SignalExecution(models.Model):
    """What happened to a signal at the broker (seed §7.2); created and closed by database triggers."""

    class FeedbackStatus(models.TextChoices):
        PENDING = "pending"
        INCLUDED = "included_in_training"

    execution_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField(help_text="Executed")
    tenant = tenant_fk()
    account = account_fk()
    signal = models.OneToOneField(TradingSignal, on_delete=models.CASCADE, related_name="execution")
    order_id = models.UUIDField(null=True, blank=True)
    ticket = models.BigIntegerField(null=True, blank=True)
    signal_entry_price = price(null=True, blank=True)
    actual_entry_price = price(null=True, blank=True)
    price_difference = price(null=True, blank=True, help_text="actual − signal entry (slippage, price units)")
    slippage_pips = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    execution_latency_ms = models.IntegerField(null=True, blank=True)
    spread_at_execution = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    market_volatility = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    trade_closed = models.BooleanField(default=False)
    close_price = price(null=True, blank=True)
    close_reason = models.CharField(max_length=20, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    profit = money(null=True, blank=True)
    profit_pips = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    feedback_status = models.CharField(max_length=24, choices=FeedbackStatus.choices, default=FeedbackStatus.PENDING)
    exported_at = models.DateTimeField(null=True, blank=True)
    ea_rejection_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "mt5_signal_executions"
        indexes = [
            models.Index("tenant", "trade_closed", "feedback_status", name="idx_executions_feedback"),
            models.Index("tenant", "account", models.F("time").desc(), name="idx_executions_account_time"),
        ]

    def __str__(self) -> str:
        return f"execution of {self.signal_id}"


class TradingViewWebhook(models.Model):
    """A per-account TradingView alert URL, `/api/tv/<token>/`; only the token's SHA-256 is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = tenant_fk()
    account = account_fk()
    token_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "suho_tradingview_webhooks"
        verbose_name = "TradingView webhook"
        indexes = [models.Index("tenant", "account", name="idx_tv_webhooks_tenant_account")]

    def __str__(self) -> str:
        return f"TradingView webhook {self.label or self.id}"


class MLEngineKey(models.Model):
    """A tenant's ML-engine credential for `POST /api/signals/` (`suho_ml_<secret>`); only its SHA-256 is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = tenant_fk()
    label = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "suho_ml_engine_keys"
        verbose_name = "ML engine key"
        indexes = [models.Index("tenant", "created_at", name="idx_ml_keys_tenant_created")]

    def __str__(self) -> str:
        return f"ML engine key {self.label or self.id}"


class ModelVersion(models.Model):
    """A trained reference model (seed §2.3 step 8): platform-wide, not tenant data, so no tenant_id and no RLS.

    `artifact` is a pickle: loading one runs code, so only artifacts this system wrote are loaded — `artifact_digest`
    is an HMAC-SHA256 keyed by SECRET_KEY, verified before unpickling, and the service role may read this table but
    not write it (retraining runs on the operator path).
    """

    id = models.BigAutoField(primary_key=True)
    version = models.CharField(max_length=64, unique=True)
    trained_at = models.DateTimeField()
    samples = models.PositiveIntegerField()
    features = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    artifact = models.BinaryField()
    artifact_digest = models.CharField(max_length=64, help_text="HMAC-SHA256 (SECRET_KEY) of the artifact")
    is_active = models.BooleanField(default=False)

    class Meta:
        db_table = "suho_model_versions"
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="model_one_active")
        ]

    def __str__(self) -> str:
        return f"{self.version}{' (active)' if self.is_active else ''}"
