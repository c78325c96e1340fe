"""REST edges for signals: intake from the ML engine, list/detail/cancel, the TradingView webhook.

Thin: authenticate, validate the JSON, call one service or selector inside the caller's tenant context, render.
Errors have the API's one shape (suho/api_errors.py renders them), `{"error": {"code": ..., "message": ...}}`: 400
`invalid_request` (malformed JSON or fields) or `invalid_alert`, 401 `not_authenticated`, 403 `permission_denied`,
404 `not_found` (also another tenant's id), 409 `illegal_transition`, 422 with the intake rule's code
(`unknown_account`, `unknown_symbol`, `invalid_action`, `invalid_price`, `stop_loss_wrong_side`,
`take_profit_wrong_side`, `expired`, `volume_out_of_range`, `confidence_out_of_range`, `no_eligible_account`).

`GET /api/signals/feedback/`: the ML engine's execution feedback (its key only), a page at a time from a cursor.

Callers: the ML engine with `Authorization: Bearer suho_ml_…` (a tenant's key, docs/decisions/0005), a signed-in
trader (their tenant), or an operator (staff without a tenant: list, detail and cancel across tenants).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from signals import selectors
from signals.serializers import (
    BroadcastOutputSerializer,
    FeedbackPageSerializer,
    FeedbackQuerySerializer,
    FeedbackRowSerializer,
    SignalInputSerializer,
    SignalListFilterSerializer,
    SignalOutputSerializer,
    feedback_cursor,
)
from signals.services import (
    BROADCAST,
    ml_engine_key_verify,
    signal_cancel,
    signal_submit,
    tradingview_webhook_resolve,
)
from signals.services.credentials import ML_KEY_PREFIX
from signals.webhooks import tradingview_alert_parse
from suho.api_errors import ErrorSerializer
from suho.edge import BoundedJSONParser, BoundedLimitOffsetPagination
from suho.routers import OPERATOR, operator_path
from suho.tenancy import tenant_context

SIGNAL_NOT_FOUND = "No such signal."
WEBHOOK_NOT_FOUND = "No such webhook."
FEEDBACK_ML_KEY_ONLY = (
    "Execution feedback for training is read with the tenant's ML-engine key (Authorization: Bearer suho_ml_…)."
)
OPERATOR_CANNOT_SUBMIT = "Signals belong to a tenant: submit them with the tenant's ML engine key or as its trader."

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="`invalid_request`: malformed JSON, fields or paging."),
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated`."),
    404: OpenApiResponse(ErrorSerializer, description="`not_found` (also another tenant's signal)."),
    409: OpenApiResponse(ErrorSerializer, description="`illegal_transition`: the signal's status does not allow it."),
    422: OpenApiResponse(ErrorSerializer, description="The intake rule's code: unknown_account, expired, ..."),
}


@dataclass(frozen=True)
class MLEngine:
    """The principal behind an ML-engine key: a tenant's producer, not a user."""

    tenant_id: UUID
    key_id: UUID
    label: str
    is_authenticated = True
    is_staff = False


class MLEngineKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer suho_ml_…`; any other bearer is left to the next authenticator (JWT)."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential.startswith(ML_KEY_PREFIX):
            return None
        key = ml_engine_key_verify(key=credential)
        if key is None:
            raise exceptions.AuthenticationFailed("The ML engine key is unknown or revoked.")
        return MLEngine(tenant_id=key.tenant_id, key_id=key.id, label=key.label), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="suho-signals"'


class MLEngineKeyScheme(OpenApiAuthenticationExtension):
    target_class = MLEngineKeyAuthentication
    name = "mlEngineKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A tenant's ML-engine key, `suho_ml_…`."}


@dataclass(frozen=True)
class Caller:
    tenant_id: UUID | None  # None: an operator, across tenants
    actor: str
    user_id: UUID | None


def _caller(request) -> Caller:
    user = request.user
    if isinstance(user, MLEngine):
        return Caller(user.tenant_id, f"ml-engine:{user.label or user.key_id}", None)
    if getattr(user, "tenant_id", None):
        return Caller(user.tenant_id, f"user:{user.username}", user.pk)
    if user.is_staff:
        return Caller(None, f"operator:{user.username}", user.pk)
    raise exceptions.PermissionDenied("This user belongs to no tenant.")


@contextmanager
def _scope(caller: Caller):
    """The caller's tenant context, or the operator path for staff."""
    if caller.tenant_id is None:
        with operator_path(), transaction.atomic(using=OPERATOR):
            yield
    else:
        with tenant_context(caller.tenant_id):
            yield


class SignalsView(APIView):
    authentication_classes = [
        MLEngineKeyAuthentication,
        *APIView.authentication_classes,  # the portal's JWT and session authentication
    ]
    permission_classes = [IsAuthenticated]
    parser_classes = [BoundedJSONParser]


def _submission_response(submission, *, broadcast: bool) -> Response:
    code = status.HTTP_201_CREATED if submission.created else status.HTTP_200_OK
    if broadcast:
        body = {"broadcast_id": submission.broadcast_id, "signals": submission.signals}
        return Response(BroadcastOutputSerializer(body).data, status=code)
    return Response(SignalOutputSerializer(submission.signals[0]).data, status=code)


class SignalListCreateApi(SignalsView):
    @extend_schema(
        operation_id="signals_create",
        tags=["Signals"],
        summary='Submit a signal (seed §5.2 JSON) for one account, or for every eligible one with "broadcast"',
        description="Idempotent on `signal_id` (the producer's id): a repeat returns 200 with what was recorded. "
        "201 also when the risk gate refused the signal: it is recorded with `status: rejected` and the reason.",
        request=SignalInputSerializer,
        responses={201: SignalOutputSerializer, 200: SignalOutputSerializer, **ERRORS},
    )
    def post(self, request):
        caller = _caller(request)
        if caller.tenant_id is None:
            raise exceptions.PermissionDenied(OPERATOR_CANNOT_SUBMIT)
        serializer = SignalInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account_id = serializer.validated_data["account_id"]
        submission = signal_submit(
            tenant_id=caller.tenant_id, account_id=account_id, payload=serializer.spec(), source="ml",
            client_signal_id=serializer.validated_data["signal_id"], actor=caller.actor,
        )  # fmt: skip
        return _submission_response(submission, broadcast=account_id == BROADCAST)

    @extend_schema(
        operation_id="signals_list",
        tags=["Signals"],
        summary="The tenant's signals, newest first",
        parameters=[SignalListFilterSerializer],
        responses={200: SignalOutputSerializer(many=True), 400: ERRORS[400], 401: ERRORS[401]},
    )
    def get(self, request):
        caller = _caller(request)
        filters = SignalListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = BoundedLimitOffsetPagination()
        with _scope(caller):
            page = paginator.paginate_queryset(selectors.signals_list(**filters.validated_data), request, view=self)
            data = SignalOutputSerializer(page, many=True).data
        return paginator.get_paginated_response(data)


class SignalDetailApi(SignalsView):
    @extend_schema(operation_id="signals_detail", tags=["Signals"], responses={200: SignalOutputSerializer, **ERRORS})
    def get(self, request, signal_id: UUID):
        with _scope(_caller(request)):
            signal = selectors.signal_get(signal_id=signal_id)
        if signal is None:
            raise exceptions.NotFound(SIGNAL_NOT_FOUND)
        return Response(SignalOutputSerializer(signal).data)


class SignalCancelApi(SignalsView):
    @extend_schema(
        operation_id="signals_cancel",
        tags=["Signals"],
        summary="PENDING → CANCELLED; any other status is 409 illegal_transition",
        request=None,
        responses={200: SignalOutputSerializer, **ERRORS},
    )
    def post(self, request, signal_id: UUID):
        caller = _caller(request)
        with _scope(caller):
            signal = selectors.signal_get(signal_id=signal_id)
            if signal is None:
                raise exceptions.NotFound(SIGNAL_NOT_FOUND)
            signal = signal_cancel(signal=signal, actor=caller.actor, user_id=caller.user_id)
        return Response(SignalOutputSerializer(signal).data)


class FeedbackApi(SignalsView):
    @extend_schema(
        operation_id="signals_feedback",
        tags=["Signals"],
        summary="Closed executions for retraining (seed §7.3), page by page from a cursor; ML-engine key only",
        description="Every closed execution of the key's tenant whose signal time is in [`start`, `end`), oldest "
        "first in (signal time, signal id) order, exported or not (an export marks rows `included_in_training`, "
        "it never hides them). Pass `next_cursor` back as `cursor` with the same filters until it is null. A "
        "trader's JWT or session is 403 `permission_denied`; a cursor this API did not issue is 400 "
        "`invalid_request`.",
        parameters=[FeedbackQuerySerializer],
        responses={200: FeedbackPageSerializer, 400: ERRORS[400], 401: ERRORS[401],
                   403: OpenApiResponse(ErrorSerializer, description="`permission_denied`: not an ML-engine key.")},
        auth=[{"mlEngineKey": []}],
    )  # fmt: skip
    def get(self, request):
        if not isinstance(request.user, MLEngine):
            raise exceptions.PermissionDenied(FEEDBACK_ML_KEY_ONLY)
        query = FeedbackQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        limit = filters["limit"]
        with tenant_context(request.user.tenant_id):
            rows = selectors.feedback_page(start=filters["start"], end=filters["end"],
                                           strategy=filters.get("strategy"), after=filters.get("cursor"),
                                           limit=limit + 1)  # fmt: skip
        more = len(rows) > limit
        rows = rows[:limit]
        body = {"results": FeedbackRowSerializer(rows, many=True).data,
                "next_cursor": feedback_cursor(rows[-1]) if more else None}  # fmt: skip
        return Response(body)


class TradingViewWebhookApi(APIView):
    """`POST /api/tv/<token>/`: the secret URL is the credential (no session, hence no CSRF); an unknown or revoked
    token is 404 and writes nothing. Body: `action,symbol,key=value…` or JSON, any content type."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response._has_been_logged = True  # django.request would log the path of a 4xx, and the path is the secret
        return response

    @extend_schema(
        operation_id="tradingview_webhook",
        tags=["Signals"],
        summary="A TradingView alert for the account this secret URL belongs to",
        request={"text/plain": str, "application/json": SignalInputSerializer},
        responses={201: SignalOutputSerializer, 200: SignalOutputSerializer, **ERRORS},
        auth=[],
    )
    def post(self, request, token: str):
        hook = tradingview_webhook_resolve(token=token)
        if hook is None:
            raise exceptions.NotFound(WEBHOOK_NOT_FOUND)
        fields = tradingview_alert_parse(request.body, now=timezone.now())
        serializer = SignalInputSerializer(data={**fields, "account_id": str(hook.account_id)})
        serializer.is_valid(raise_exception=True)
        submission = signal_submit(
            tenant_id=hook.tenant_id, account_id=hook.account_id, payload=serializer.spec(), source="tradingview",
            client_signal_id=serializer.validated_data["signal_id"], actor=f"tradingview:{hook.id}",
        )  # fmt: skip
        return _submission_response(submission, broadcast=False)
