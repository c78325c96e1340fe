"""Read-only admin for the compliance tables: operators read the audit log, risk events, reports and consents.

Runs on the operator path (every tenant). Nothing here adds, changes or deletes: the audit log and reports are
immutable in the database as well, and risk events change only through the risk monitor.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from compliance.models import AuditLog, ComplianceReport, RiskEvent, UserConsent
from suho.admin_site import ReadOnlyAdmin


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("time", "tenant", "event_type", "event_category", "action", "severity", "account_id", "user_id",
                    "chain_seq")  # fmt: skip
    list_filter = ("event_category", "severity")
    list_select_related = ("tenant",)
    search_fields = ("event_type", "event_description", "=account_id", "=user_id")
    date_hierarchy = "time"
    show_full_result_count = False  # the audit log is large: no count(*) per page


@admin.register(RiskEvent)
class RiskEventAdmin(ReadOnlyAdmin):
    list_display = ("time", "tenant", "account", "event_type", "severity", "status", "current_value",
                    "threshold_value", "action_taken", "notified_at", "resolved_at")  # fmt: skip
    list_filter = ("status", "event_type", "severity")
    list_select_related = ("tenant", "account")
    date_hierarchy = "time"


@admin.register(ComplianceReport)
class ComplianceReportAdmin(ReadOnlyAdmin):
    list_display = ("time", "tenant", "report_type", "period_start", "period_end", "generated_by", "checksum")
    list_filter = ("report_type",)
    list_select_related = ("tenant",)
    exclude = ("content",)  # large: download it instead
    readonly_fields = ("downloads",)

    @admin.display(description="Download")
    def downloads(self, obj):
        links = [(reverse(f"compliance-report-{fmt}", args=[obj.pk]), fmt) for fmt in ("json", "csv")]
        return format_html(" ".join('<a href="{}">{}</a>' for _ in links), *[v for link in links for v in link])


@admin.register(UserConsent)
class UserConsentAdmin(ReadOnlyAdmin):
    list_display = ("time", "tenant", "user", "purpose", "version", "granted", "withdrawn_at")
    list_filter = ("purpose", "granted")
    list_select_related = ("tenant", "user")
