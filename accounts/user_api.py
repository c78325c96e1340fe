"""REST edges for traders (and their scripts): tokens and MT5 accounts. Balances, trades, executions and feedback,
which read the gateway's and the signals' rows, are a layer up (trading/user_api.py), risk events at the top
(compliance/api.py). JWT (`/api/token/`) or the portal session; tenant-scoped: another tenant's id is 404.

Thin: validate the query, run one selector inside the caller's tenant context, serialize. Errors have the API's
one shape (suho/api_errors.py), `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

from contextlib import contextmanager

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import selectors
from accounts.models import MT5Account
from accounts.services import TOKEN_SCOPE, mt5_account_create
from accounts.staff_auth import STAFF_2FA_CLAIM, staff_login_accept, user_token_allowed
from accounts.throttle import password_login
from accounts.user_tokens import UserTokenError, user_tokens_issue, user_tokens_refresh
from suho.api_errors import ErrorSerializer
from suho.edge import BoundedLimitOffsetPagination
from suho.tenancy import tenant_context

ACCOUNT_NOT_FOUND = "No such MT5 account."
NO_TENANT = "This user belongs to no tenant; operators use the admin."
EA_TOKEN_REFUSED = "EA refresh tokens are refreshed at /api/ea/token/refresh, not here."  # noqa: S105
STAFF_TOKEN_INVALID = "No active staff account found with these credentials and authentication code."  # noqa: S105

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="`invalid_request`: malformed fields or query."),
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated`."),
    403: OpenApiResponse(ErrorSerializer, description="`permission_denied`: a user without tenant."),
    404: OpenApiResponse(ErrorSerializer, description="`not_found` (also another tenant's id)."),
}


class UserApiView(APIView):
    @contextmanager
    def tenant(self):
        """The caller's tenant context (JWT requests reach the view without one: the middleware saw no user)."""
        tenant_id = getattr(self.request.user, "tenant_id", None)
        if tenant_id is None:
            raise exceptions.PermissionDenied(NO_TENANT)
        with tenant_context(tenant_id):
            yield

    def account(self, account_id) -> MT5Account:
        account = selectors.portal_account(account_id=account_id)
        if account is None:
            raise exceptions.NotFound(ACCOUNT_NOT_FOUND)
        return account

    def page(self, queryset, serializer_class):
        paginator = BoundedLimitOffsetPagination()
        rows = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(rows, many=True).data)


class AccountSerializer(serializers.ModelSerializer):
    online = serializers.SerializerMethodField()

    class Meta:
        model = MT5Account
        fields = ("account_id", "name", "account_number", "broker", "server", "account_type", "currency", "leverage",
                  "is_active", "connection_status", "online", "last_heartbeat_at", "last_refusal_reason",
                  "last_refusal_at", "last_ea_error", "config_version", "trading_enabled", "emergency_stop",
                  "max_position_size", "max_daily_loss", "max_drawdown_percent", "min_margin_level",
                  "allowed_symbols", "created_at")  # fmt: skip
        read_only_fields = fields

    def get_online(self, account) -> bool:
        return selectors.ea_is_online(account)


class AccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    account_type = serializers.ChoiceField(choices=MT5Account.AccountType.choices, default="demo")
    account_number = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    broker = serializers.CharField(max_length=100, required=False, allow_blank=True)
    server = serializers.CharField(max_length=100, required=False, allow_blank=True)


class AccountListApi(UserApiView):
    @extend_schema(operation_id="accounts_list", tags=["Accounts"], responses={200: AccountSerializer(many=True),
                   **ERRORS})  # fmt: skip
    def get(self, request):
        with self.tenant():
            return self.page(selectors.portal_accounts(), AccountSerializer)

    @extend_schema(operation_id="accounts_create", tags=["Accounts"], request=AccountCreateSerializer,
                   responses={201: AccountSerializer, **ERRORS})  # fmt: skip
    def post(self, request):
        data = AccountCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with self.tenant():
            account = mt5_account_create(user=request.user, **data.validated_data)
        return Response(AccountSerializer(account).data, status=status.HTTP_201_CREATED)


class AccountDetailApi(UserApiView):
    @extend_schema(operation_id="accounts_detail", tags=["Accounts"], responses={200: AccountSerializer, **ERRORS})
    def get(self, request, account_id):
        with self.tenant():
            return Response(AccountSerializer(self.account(account_id)).data)


class UserTokenObtainSerializer(TokenObtainPairSerializer):
    def validate(self, attrs):
        """simplejwt's checks behind the log-in back-off: inactive users, users without a tenant and staff get
        simplejwt's one "no active account" answer (and count as failed log-ins)."""
        self.user = password_login(request=self.context.get("request"), username=attrs[self.username_field],
                                   password=attrs["password"], accept=user_token_allowed)  # fmt: skip
        if self.user is None:
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        return user_tokens_issue(user=self.user)


class UserTokenRefreshSerializer(TokenRefreshSerializer):
    refresh = serializers.CharField(max_length=4096)

    def validate(self, attrs):
        try:
            scope = RefreshToken(attrs["refresh"]).get("scope")
        except TokenError:
            scope = None  # user_tokens_refresh reports a bad token
        if scope == TOKEN_SCOPE:
            raise serializers.ValidationError(EA_TOKEN_REFUSED)
        try:
            return user_tokens_refresh(refresh=attrs["refresh"])
        except UserTokenError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc


class UserTokenObtainView(TokenObtainPairView):
    """A trader's JWT pair from user name and password (15-minute access token; the refresh token starts a family
    of rotating tokens, accounts/user_tokens.py)."""

    serializer_class = UserTokenObtainSerializer


class UserTokenRefreshView(TokenRefreshView):
    """Spend a trader's refresh token for a new pair (a spent one revokes its family); EA refresh tokens are
    refused (they rotate through the EA endpoint)."""

    serializer_class = UserTokenRefreshSerializer


class StaffTokenSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    otp_code = serializers.CharField(max_length=10, required=False, allow_blank=True)


class StaffTokenResponseSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="15-minute access token; there is no refresh token for staff.")


class StaffTokenObtainView(APIView):
    """An operator's access token: password and the current TOTP code, the same refusal for any wrong part."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(operation_id="staff_token", tags=["Auth"], request=StaffTokenSerializer,
                   responses={200: StaffTokenResponseSerializer, 400: ERRORS[400], 401: ERRORS[401]})  # fmt: skip
    def post(self, request):
        data = StaffTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        credentials = data.validated_data
        code = credentials.get("otp_code")
        user = password_login(request=request, username=credentials["username"], password=credentials["password"],
                              accept=staff_login_accept(code))  # fmt: skip
        if user is None:
            raise exceptions.AuthenticationFailed(STAFF_TOKEN_INVALID)
        token = AccessToken.for_user(user)
        token[STAFF_2FA_CLAIM] = True
        return Response({"access": str(token)})
