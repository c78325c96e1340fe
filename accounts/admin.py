"""Minimal admin for MT5 accounts and API keys: issue and revoke through the services (the operator issue adds more).

Runs on the operator path (suho.admin_site.OperatorAdminMiddleware). Nothing is deleted here: keys are revoked, so
their sessions end and the audit trail stays whole.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from accounts.models import ApiKey, MT5Account
from accounts.services import api_key_create, api_key_revoke


@admin.register(MT5Account)
class MT5AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "account_number", "server", "tenant", "user", "account_type", "is_active",
                    "connection_status", "last_refusal_reason", "last_refusal_at")  # fmt: skip
    list_filter = ("account_type", "is_active", "connection_status")
    list_select_related = ("tenant", "user")
    search_fields = ("name", "account_number", "server", "broker")
    readonly_fields = ("account_id", "created_at", "connection_status", "last_heartbeat_at", "last_connected_at",
                       "last_refusal_reason", "last_refusal_at", "last_ea_error", "config_version")  # fmt: skip
    actions = ["issue_api_key"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
