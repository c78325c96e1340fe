"""REST edges for deviation analytics (seed §6.4): the signed-in trader's tenant only.

Errors have the API's one shape (suho/api_errors.py), `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from quotes.selectors import deviation_anomalies, deviation_by_symbol, deviation_by_symbol_and_broker
from suho.api_errors import ErrorSerializer
from suho.tenancy import tenant_context

NO_TENANT = "no_tenant"
ANALYTICS_NO_TENANT = "Deviation analytics are per tenant; this user belongs to none."
MAX_HOURS = 24 * 90  # broker quotes are kept 90 days (seed §3.3)


ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="A parameter out of range (`invalid_request`)."),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in."),
    403: OpenApiResponse(ErrorSerializer, description="`no_tenant`: the user belongs to no tenant."),
}


class AnalyticsApi(APIView):
    def tenant_id(self, request):
        tenant_id = getattr(request.user, "tenant_id", None)
        if tenant_id is None:
            raise exceptions.PermissionDenied(ANALYTICS_NO_TENANT, code=NO_TENANT)
        return tenant_id


class DeviationRowSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    broker_server = serializers.CharField(required=False)
    avg_deviation = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    stddev_deviation = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    max_deviation = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    sample_count = serializers.IntegerField()


class DeviationOutputSerializer(serializers.Serializer):
    hours = serializers.IntegerField()
    by = serializers.CharField()
    results = DeviationRowSerializer(many=True)


class DeviationApi(AnalyticsApi):
    class InputSerializer(serializers.Serializer):
        hours = serializers.IntegerField(min_value=1, max_value=MAX_HOURS, default=24)
        by = serializers.ChoiceField(choices=["symbol", "broker"], default="symbol")

    @extend_schema(
        operation_id="analytics_deviation",
        tags=["Analytics"],
        summary="Broker deviation from the reference mid per symbol (or symbol and broker server)",
        parameters=[InputSerializer],
        responses={200: DeviationOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        hours, by = params.validated_data["hours"], params.validated_data["by"]
        with tenant_context(self.tenant_id(request)):
            if by == "broker":
                rows = deviation_by_symbol_and_broker(hours=hours)
            else:
                rows = [
                    {**row, "avg_deviation": row.pop("avg_deviation_pips")} for row in deviation_by_symbol(hours=hours)
                ]
        return Response({"hours": hours, "by": by, "results": DeviationRowSerializer(rows, many=True).data})


class DeviationAnomalySerializer(serializers.Serializer):
    symbol = serializers.CharField()
    broker_server = serializers.CharField()
    anomaly_count = serializers.IntegerField()
    max_abs_deviation_percent = serializers.DecimalField(max_digits=12, decimal_places=6)
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class DeviationAnomaliesOutputSerializer(serializers.Serializer):
    hours = serializers.IntegerField()
    threshold_percent = serializers.CharField()
    results = DeviationAnomalySerializer(many=True)


class DeviationAnomaliesApi(AnalyticsApi):
    class InputSerializer(serializers.Serializer):
        hours = serializers.IntegerField(min_value=1, max_value=MAX_HOURS, default=1)
        threshold_percent = serializers.DecimalField(max_digits=8, decimal_places=4, min_value=0, default=0.05)

    @extend_schema(
        operation_id="analytics_deviation_anomalies",
        tags=["Analytics"],
        summary="Symbols and brokers whose quotes strayed from the reference by more than a threshold (percent)",
        parameters=[InputSerializer],
        responses={200: DeviationAnomaliesOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        hours, threshold = params.validated_data["hours"], params.validated_data["threshold_percent"]
        with tenant_context(self.tenant_id(request)):
            rows = deviation_anomalies(threshold_percent=threshold, hours=hours)
        return Response({"hours": hours, "threshold_percent": str(threshold),
                         "results": DeviationAnomalySerializer(rows, many=True).data})  # fmt: skip
