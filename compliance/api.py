"""REST edges for compliance: download a stored report as CSV or JSON (tenant-scoped; another tenant's is a 404;
staff read every tenant's on the operator path)."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from compliance.reports import canonical_json, report_csv
from compliance.selectors import compliance_report_get
from suho.routers import operator_path
from suho.tenancy import tenant_context

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


class ComplianceReportDownloadApi(APIView):
    @extend_schema(
        summary="Download a compliance report",
        description="The stored report of the caller's tenant as JSON (the canonical bytes its checksum covers) or "
        "CSV. `X-Checksum-SHA256` carries the stored checksum.",
        responses={200: OpenApiTypes.BINARY, 404: None},
    )
    def get(self, request, report_id, fmt):
        tenant_id = getattr(request.user, "tenant_id", None)
        if fmt not in CONTENT_TYPES or (tenant_id is None and not request.user.is_staff):
            raise Http404
        if request.user.is_staff:  # operators (admin): every tenant's reports, on the operator path
            with operator_path():
                report = compliance_report_get(report_id=report_id)
        else:
            with tenant_context(tenant_id):
                report = compliance_report_get(report_id=report_id)
        if report is None:
            raise Http404
        body = canonical_json(report.content) if fmt == "json" else report_csv(report).encode()
        response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
        name = f"{report.report_type}_{report.period_start:%Y%m%d}_{report.period_end:%Y%m%d}_{report.id}.{fmt}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Checksum-SHA256"] = report.checksum
        return response
