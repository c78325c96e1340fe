"""REST edges for compliance: an account's risk events and report downloads (tenant-scoped; another tenant's is a
404; staff read every tenant's reports on the operator path) and the signed-in user's GDPR requests (export,
consent, withdrawal). Thin: parse, call one
service, render."""

from __future__ import annotations

import ipaddress
import json

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.user_api import ERRORS, UserApiView
from compliance.gdpr import consent_record, consent_withdraw, user_data_export
from compliance.models import RiskEvent
from compliance.reports import canonical_json, report_csv
from compliance.selectors import compliance_report_get, risk_events
from suho.routers import operator_path
from suho.tenancy import tenant_context

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


class RiskEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RiskEvent
        exclude = ("tenant",)


class AccountRiskEventsApi(UserApiView):
    @extend_schema(operation_id="accounts_risk_events", tags=["Accounts"],
                   responses={200: RiskEventSerializer(many=True), **ERRORS})  # fmt: skip
    def get(self, request, account_id):
        with self.tenant():
            account = self.account(account_id)
            return self.page(risk_events(account_id=account.account_id), RiskEventSerializer)


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


class UserDataExportApi(APIView):
    @extend_schema(summary="Export my personal data (GDPR Art. 15/20)", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        document = user_data_export(user=request.user)
        response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="suho-data-{request.user.pk}.json"'
        return response


class ConsentApi(APIView):
    class InputSerializer(serializers.Serializer):
        purpose = serializers.SlugField(max_length=60)
        version = serializers.CharField(max_length=20)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        purpose = serializers.CharField()
        version = serializers.CharField()
        granted = serializers.BooleanField()
        time = serializers.DateTimeField()

    @extend_schema(summary="Record my consent", request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            consent = consent_record(
                user=request.user, **data.validated_data, ip_address=_client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
            )  # fmt: skip
        except ValueError as exc:
            raise exceptions.ValidationError(str(exc)) from exc
        return Response(self.OutputSerializer(consent).data, status=status.HTTP_201_CREATED)


class ConsentWithdrawApi(APIView):
    @extend_schema(summary="Withdraw my consent to a purpose", responses={204: None, 404: None})
    def delete(self, request, purpose):
        try:
            consent_withdraw(user=request.user, purpose=purpose, ip_address=_client_ip(request))
        except ValueError as exc:
            raise exceptions.NotFound(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


def _client_ip(request) -> str | None:
    value = request.META.get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None
