"""Identity (tenants, users) and the trader's MT5 accounts."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from binproto import MAX_SYMBOL_BYTES, MAX_SYMBOLS

ALLOWED_SYMBOLS_NOT_A_LIST = "Allowed symbols must be a list of symbol names."
ALLOWED_SYMBOLS_TOO_MANY = "At most {limit} allowed symbols (the EA protocol's limit), not {count}."
ALLOWED_SYMBOL_INVALID = "A symbol name is 1 to {limit} bytes of text without NUL characters, not {symbol!r}."


def allowed_symbols_problem(symbols) -> str | None:
    """Why `symbols` cannot be an account's allowed_symbols, or None. RISK_PARAMETERS carries at most MAX_SYMBOLS
    names of 1..MAX_SYMBOL_BYTES UTF-8 bytes; a list beyond that could never reach the EA (docs/protocol.md §7)."""
    if not isinstance(symbols, list):
        return ALLOWED_SYMBOLS_NOT_A_LIST
    if len(symbols) > MAX_SYMBOLS:
        return ALLOWED_SYMBOLS_TOO_MANY.format(limit=MAX_SYMBOLS, count=len(symbols))
    for symbol in symbols:
        try:
            size = len(symbol.encode()) if isinstance(symbol, str) else 0
        except UnicodeEncodeError:
            size = 0
        if not 1 <= size <= MAX_SYMBOL_BYTES or "\0" in symbol:
            return ALLOWED_SYMBOL_INVALID.format(limit=MAX_SYMBOL_BYTES, symbol=symbol)
    return None


class Tenant(models.Model):
    """One customer organisation; every tenant-owned row carries its id and row-level security filters on it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    trading_enabled = models.BooleanField(default=True, help_text="Off = emergency stop for every account.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "suho_tenants"

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A trader (belongs to one tenant) or an operator (staff, may have no tenant)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="users")
    email = models.EmailField(blank=True)
    totp_secret = models.CharField(
        max_length=64, blank=True, help_text="Base32 TOTP secret (RFC 6238): set = the admin log-in asks for a code."
    )

    class Meta:
        db_table = "suho_users"
        constraints = [
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="user_email_unique_when_given")
        ]

    def __str__(self) -> str:
        return self.username


class MT5Account(models.Model):
    """A trader's MT5 trading account (seed `mt5_user_accounts`), with its risk parameters and EA settings.

    Risk parameters and EA settings live on the row and share one `config_version`, bumped on every change, so
    an EA can tell which configuration it runs (seed §2.2 items 2–3).
    """

    class AccountType(models.TextChoices):
        DEMO = "demo"
        LIVE = "live"

    class SizingMethod(models.TextChoices):
        FIXED_LOTS = "fixed_lots"
        RISK_PERCENT = "risk_percent"

    account_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="mt5_accounts")
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="mt5_accounts")
    name = models.CharField(max_length=100, blank=True)
    # Profile, as the EA reports it (seed §2.1 item 1).
    account_number = models.BigIntegerField(null=True, blank=True, help_text="MT5 login")
    broker = models.CharField(max_length=100, blank=True)
    server = models.CharField(max_length=100, blank=True)
    account_type = models.CharField(max_length=10, choices=AccountType.choices, default=AccountType.DEMO)
    currency = models.CharField(max_length=10, default="USD")
    leverage = models.PositiveIntegerField(null=True, blank=True)
    ea_version = models.CharField(max_length=40, blank=True)
    mt5_build = models.PositiveIntegerField(null=True, blank=True)
    ea_settings_reported = models.JSONField(default=dict, blank=True)
    profile_updated_at = models.DateTimeField(null=True, blank=True)
    # v1 EAs number symbols; older builds numbered 8+ differently: per-account override {"8": "XAUUSD"}.
    symbol_id_overrides = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Connection state (kept current by the gateway; the heartbeat table holds the history).
    connection_status = models.CharField(max_length=20, default="offline")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_refusal_reason = models.CharField(max_length=40, blank=True)
    last_refusal_at = models.DateTimeField(null=True, blank=True)
    last_ea_error = models.CharField(max_length=300, blank=True)
    # The one live EA session (decision 0017): every HELLO bumps the epoch in one locked update; frames of a session
    # whose epoch is no longer this one change nothing, and the process in `live_session_node` is told to close it.
    live_session_epoch = models.BigIntegerField(default=0, db_default=0)
    live_session_id = models.UUIDField(null=True, blank=True)
    live_session_node = models.CharField(max_length=100, blank=True, default="", db_default="")
    # The epoch whose disconnect was recorded: while it is still `live_session_epoch`, no EA is connected, and a
    # heartbeat batch committed after the disconnect (buffered by then) leaves the account offline
    # (trading.ingest.MARK_ONLINE). The next claim's epoch differs, so nothing needs clearing.
    disconnected_epoch = models.BigIntegerField(null=True, blank=True)
    # Risk parameters (seed §2.2 item 2).
    config_version = models.PositiveIntegerField(default=1)
    trading_enabled = models.BooleanField(default=True)
    emergency_stop = models.BooleanField(default=False)
    max_position_size = models.DecimalField(max_digits=14, decimal_places=4, default=1)
    max_daily_loss = models.DecimalField(max_digits=20, decimal_places=2, default=500)
    max_drawdown_percent = models.DecimalField(max_digits=6, decimal_places=2, default=20)
    min_margin_level = models.DecimalField(max_digits=10, decimal_places=2, default=150)
    allowed_symbols = models.JSONField(default=list, blank=True, help_text="Empty = every symbol.")
    trading_hours_start_utc = models.TimeField(null=True, blank=True)
    trading_hours_end_utc = models.TimeField(null=True, blank=True)
    sizing_method = models.CharField(max_length=20, choices=SizingMethod.choices, default=SizingMethod.FIXED_LOTS)
    risk_percent = models.DecimalField(max_digits=6, decimal_places=3, default=1)
    # EA settings (seed §2.2 item 3).
    sl_multiplier = models.DecimalField(max_digits=8, decimal_places=3, default=1)
    tp_multiplier = models.DecimalField(max_digits=8, decimal_places=3, default=1)
    slippage_tolerance_pips = models.DecimalField(max_digits=8, decimal_places=2, default=2)
    max_spread_points = models.DecimalField(max_digits=10, decimal_places=1, default=30)
    magic_number = models.BigIntegerField(default=20250101)
    comment_prefix = models.CharField(max_length=20, default="suho")
    strategy_parameters = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "mt5_user_accounts"
        verbose_name = "MT5 account"
        indexes = [models.Index(fields=["tenant", "user"], name="idx_user_accounts_tenant_user")]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_position_size__gt=0), name="account_max_position_positive"),
            models.CheckConstraint(condition=models.Q(max_daily_loss__gte=0), name="account_max_daily_loss_nonneg"),
            models.CheckConstraint(
                condition=models.Q(max_drawdown_percent__gte=0, max_drawdown_percent__lte=100),
                name="account_max_drawdown_percent_range",
            ),
            models.CheckConstraint(
                condition=models.Q(risk_percent__gt=0, risk_percent__lte=100), name="account_risk_percent_range"
            ),
        ]

    def __str__(self) -> str:
        label = self.name or (f"{self.account_number}@{self.server}" if self.account_number else str(self.account_id))
        return label

    def clean(self) -> None:
        """The admin's form validates through here: the same protocol limits as the portal form and the service."""
        problem = allowed_symbols_problem(self.allowed_symbols)
        if problem:
            raise ValidationError({"allowed_symbols": problem})


class ApiKey(models.Model):
    """An EA's API key (seed §4.3): `suho_ea_<key_id>_<secret>`; only an Argon2 hash of the secret is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(MT5Account, on_delete=models.CASCADE, related_name="api_keys")
    key_id = models.CharField(max_length=24, unique=True)
    secret_hash = models.CharField(max_length=200)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        db_table = "mt5_api_keys"
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "account"], name="idx_api_keys_tenant_account")]

    def __str__(self) -> str:
        return f"suho_ea_{self.key_id}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EASession(models.Model):
    """One authenticated EA connection lifetime: created at API-key auth, ended by revocation, expiry, logout or a
    newer session of the account (`END_REPLACED`, decision 0017)."""

    END_REPLACED = "replaced"

    session_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(MT5Account, on_delete=models.CASCADE, related_name="ea_sessions")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    refresh_generation = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "mt5_ea_sessions"
        verbose_name = "EA session"
        indexes = [models.Index(fields=["tenant", "account", "-created_at"], name="idx_ea_sessions_tenant_acct")]

    def __str__(self) -> str:
        return str(self.session_id)


class UserTokenFamily(models.Model):
    """One chain of a user's rotating refresh tokens, from one `/api/token/` log-in (accounts/user_tokens.py).

    Each refresh spends the presented token (`generation` moves on); presenting a spent one revokes the whole chain,
    since one of its two holders is not the user. Read and written on the operator path (a refresh starts before any
    tenant context); row-level security keeps it from other tenants' contexts like every tenant table.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="token_families")
    generation = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        db_table = "suho_user_token_families"
        indexes = [models.Index(fields=["user", "-created_at"], name="idx_token_families_user")]

    def __str__(self) -> str:
        return f"token family {self.id}"
