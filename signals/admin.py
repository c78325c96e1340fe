"""Admin for signals and their producers' credentials: read, cancel, revoke — always through the services.

Runs on the operator path (suho.admin_site.OperatorAdminMiddleware). Signals are never edited or deleted here: an
operator cancels a pending one (audited with their name); anything else is the lifecycle's business.
"""

from __future__ import annotations

from django.contrib import admin, messages

from signals.models import MLEngineKey, TradingSignal, TradingViewWebhook
from signals.services import (
    SignalTransitionError,
    ml_engine_key_revoke,
    signal_cancel,
    tradingview_webhook_revoke,
)
from suho.admin_site import ReadOnlyAdmin


@admin.register(TradingSignal)
class TradingSignalAdmin(ReadOnlyAdmin):
    acts = True  # the cancel action
    list_display = ("time", "account", "tenant", "symbol", "action", "volume", "entry_price", "status",
                    "status_reason", "source", "valid_until")  # fmt: skip
    list_filter = ("status", "source", "action")
    list_select_related = ("account", "tenant")
    search_fields = ("symbol", "client_signal_id", "signal_id")
    date_hierarchy = "time"
    actions = ["cancel"]

    @admin.action(description="Cancel (pending signals only)", permissions=["change"])
    def cancel(self, request, queryset):
        cancelled, refused = 0, []
        for signal in queryset:
            try:
                signal_cancel(signal=signal, actor=f"operator:{request.user.username}", user_id=request.user.pk)
                cancelled += 1
            except SignalTransitionError as exc:
                refused.append(f"{signal.signal_id}: {exc.message}")
        self.message_user(request, f"Cancelled {cancelled} signal(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not cancelled — " + "; ".join(refused[:20]), messages.WARNING)


@admin.register(MLEngineKey)
class MLEngineKeyAdmin(ReadOnlyAdmin):
    acts = True  # the revoke action
    list_display = ("__str__", "tenant", "label", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("tenant",)
    exclude = ("key_hash",)
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [name for name in super().get_readonly_fields(request, obj) if name != "key_hash"]

    @admin.action(description="Revoke", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            ml_engine_key_revoke(key=key, by_user_id=request.user.pk)
        self.message_user(request, f"Revoked {len(keys)} ML engine key(s).", messages.SUCCESS)


@admin.register(TradingViewWebhook)
class TradingViewWebhookAdmin(ReadOnlyAdmin):
    acts = True  # the revoke action
    list_display = ("__str__", "account", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("account", "tenant")
    exclude = ("token_hash",)
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [name for name in super().get_readonly_fields(request, obj) if name != "token_hash"]

    @admin.action(description="Revoke", permissions=["change"])
    def revoke(self, request, queryset):
        hooks = list(queryset.filter(revoked_at__isnull=True))
        for hook in hooks:
            tradingview_webhook_revoke(webhook=hook, by_user_id=request.user.pk)
        self.message_user(request, f"Revoked {len(hooks)} TradingView webhook(s).", messages.SUCCESS)
