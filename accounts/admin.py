"""Minimal admin for MT5 accounts and API keys: issue and revoke through the services (the operator issue adds more).

Runs on the operator path (suho.admin_site.OperatorAdminMiddleware). Nothing is deleted here: keys are revoked, so
their sessions end and the audit trail stays whole.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse

from accounts.admin_login import OperatorLoginForm
from accounts.models import ApiKey, EASession, MT5Account, Tenant, User
from accounts.services import (
    account_emergency_stop,
    account_positions_close_all,
    account_trading_disable,
    api_key_create,
    api_key_revoke,
    tenant_emergency_stop,
)

admin.site.login_form = OperatorLoginForm  # the second factor for operators (accounts/admin_login.py)


@admin.register(MT5Account)
class MT5AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "account_number", "server", "tenant", "user", "account_type", "is_active",
                    "connection_status", "last_refusal_reason", "last_refusal_at")  # fmt: skip
    list_filter = ("account_type", "is_active", "connection_status", "trading_enabled", "emergency_stop", "tenant")
    list_select_related = ("tenant", "user")
    search_fields = ("name", "account_number", "server", "broker", "=account_id")
    date_hierarchy = "created_at"
    # the gateway's connection state: a form posting back what it read could only make it stale
    readonly_fields = ("account_id", "created_at", "connection_status", "last_heartbeat_at", "last_connected_at",
                       "last_refusal_reason", "last_refusal_at", "last_ea_error", "config_version",
                       "live_session_epoch", "live_session_id", "live_session_node", "disconnected_epoch")  # fmt: skip
    actions = ["issue_api_key", "disable_trading", "close_all_positions", "emergency_stop"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Disable trading (push risk parameters, send DISABLE_TRADING)", permissions=["change"])
    def disable_trading(self, request, queryset):
        accounts = list(queryset)
        for account in accounts:
            account_trading_disable(account=account, by=request.user)
        self.message_user(request, f"Trading disabled on {len(accounts)} account(s).", messages.WARNING)

    @admin.action(description="Close all positions (CLOSE_ALL_POSITIONS)", permissions=["change"])
    def close_all_positions(self, request, queryset):
        accounts = list(queryset)
        for account in accounts:
            account_positions_close_all(account=account, by=request.user)
        self.message_user(request, f"Close-all sent to {len(accounts)} account(s).", messages.WARNING)

    @admin.action(description="Emergency stop", permissions=["change"])
    def emergency_stop(self, request, queryset):
        accounts = list(queryset)
        for account in accounts:
            account_emergency_stop(account=account, by=request.user)
        self.message_user(request, f"Emergency stop on {len(accounts)} account(s).", messages.WARNING)

    @admin.action(description="Issue a new API key", permissions=["change"])
    def issue_api_key(self, request, queryset):
        issued = [(account, api_key_create(account=account, created_by=request.user, label="admin")[1])
                  for account in queryset.select_related("tenant")]  # fmt: skip
        context = {**self.admin_site.each_context(request), "title": "API keys issued", "issued": issued,
                   "opts": self.model._meta}  # fmt: skip
        # Rendered here, not put in `messages`: the default message storage is a signed, unencrypted cookie.
        # Admin views are never_cache (Cache-Control: no-store), so no copy of the page is kept either.
        return TemplateResponse(request, "admin/accounts/api_keys_issued.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "account", "tenant", "label", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("account", "tenant")
    search_fields = ("key_id", "label", "account__name")
    fields = ("key_id", "tenant", "account", "label", "created_at", "created_by", "last_used_at", "revoked_at",
              "replaced_by")  # fmt: skip
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # issued from the MT5 account list, where the key is shown once

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke (ends the key's live EA sessions)", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key, by=request.user)
        self.message_user(request, f"Revoked {len(keys)} API key(s).", messages.SUCCESS)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "trading_enabled", "created_at")
    list_filter = ("is_active", "trading_enabled")
    search_fields = ("name", "slug", "=id")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "created_at", "trading_enabled")
    actions = ["emergency_stop"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Emergency stop: every account of the tenant", permissions=["change"])
    def emergency_stop(self, request, queryset):
        stopped = sum(tenant_emergency_stop(tenant=tenant, by=request.user) for tenant in queryset)
        self.message_user(request, f"Emergency stop on {stopped} account(s).", messages.WARNING)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "tenant", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_active", "tenant")
    list_select_related = ("tenant",)
    date_hierarchy = "date_joined"
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Tenant", {"fields": ("tenant",)}))
    exclude = ("totp_secret",)  # set only through operator_totp_enable, never shown


@admin.register(EASession)
class EASessionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "tenant", "account", "api_key", "last_seen_at", "ended_at", "end_reason",
                    "remote_addr")  # fmt: skip
    list_filter = ("end_reason", ("ended_at", admin.EmptyFieldListFilter), "tenant")
    list_select_related = ("tenant", "account", "api_key")
    search_fields = ("=session_id", "account__name", "remote_addr")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
