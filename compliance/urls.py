"""Compliance REST routes, mounted under /api/compliance/."""

from django.urls import path, re_path

from compliance import api

urlpatterns = [
    re_path(
        r"^reports/(?P<report_id>[0-9a-f-]{36})\.(?P<fmt>csv|json)$",
        api.ComplianceReportDownloadApi.as_view(),
        name="compliance-report-download",
    ),
    path("me/export", api.UserDataExportApi.as_view(), name="gdpr-export"),
    path("consents", api.ConsentApi.as_view(), name="gdpr-consents"),
    path("consents/<slug:purpose>", api.ConsentWithdrawApi.as_view(), name="gdpr-consent-withdraw"),
]
