"""Compliance REST routes, mounted under /api/compliance/."""

from django.urls import path

from compliance import api

urlpatterns = [
    # `uuid` converter: an id that is not a UUID is a 404 at routing, never a failed query.
    path("reports/<uuid:report_id>.json", api.ComplianceReportDownloadApi.as_view(), {"fmt": "json"},
         name="compliance-report-json"),
    path("reports/<uuid:report_id>.csv", api.ComplianceReportDownloadApi.as_view(), {"fmt": "csv"},
         name="compliance-report-csv"),
    path("me/export", api.UserDataExportApi.as_view(), name="gdpr-export"),
    path("consents", api.ConsentApi.as_view(), name="gdpr-consents"),
    path("consents/<slug:purpose>", api.ConsentWithdrawApi.as_view(), name="gdpr-consent-withdraw"),
]  # fmt: skip
