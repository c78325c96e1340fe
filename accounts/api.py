"""REST edges for EAs: API key → tokens, refresh → tokens. Thin: validate, call one service, render.

Errors have the API's one shape (suho/api_errors.py), `{"error": {"code": ..., "message": ...}}`: 400
`invalid_request` for malformed input, 401 with a refusal code for bad credentials or tokens (EAAuthError), 429
`rate_limited` with Retry-After.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import (
    MAX_API_KEY_LENGTH,
    MAX_TOKEN_LENGTH,
    Refusal,
    ea_authenticate,
    ea_token_refresh,
)
from suho.api_errors import ErrorSerializer
from suho.edge import BoundedJSONParser


class TokensOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "EATokens"

    access = serializers.CharField(help_text="Access JWT (15 minutes) for the EA WebSocket /ws/ea/.")
    refresh = serializers.CharField(help_text="Refresh JWT: single use; POST it to /api/ea/token/refresh.")
    session_id = serializers.UUIDField()
    access_expires_at = serializers.DateTimeField()
    refresh_expires_at = serializers.DateTimeField()
    tenant_id = serializers.UUIDField()
    account_id = serializers.UUIDField()


ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input (`invalid_request`)."),
    401: OpenApiResponse(ErrorSerializer, description=f"Refused; `code` says why, one of: {', '.join(Refusal)}."),
    429: OpenApiResponse(ErrorSerializer, description="`rate_limited`: too many failures; see Retry-After."),
}


class EAAuthView(APIView):
    """Unauthenticated by design (the credentials are the body): no session authentication, hence no CSRF."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]


class EAAuthApi(EAAuthView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EAAuthInput"

        account_id = serializers.UUIDField()
        api_key = serializers.CharField(max_length=MAX_API_KEY_LENGTH)

    @extend_schema(
        operation_id="ea_auth",
        tags=["EA"],
        summary="Exchange an MT5 account id and API key for tokens",
        description="Opens an EA session. Failed attempts are limited per account and per client address.",
        request=InputSerializer,
        responses={200: TokensOutputSerializer, **ERROR_RESPONSES},
        auth=[],
        examples=[
            OpenApiExample(
                "request",
                request_only=True,
                value={"account_id": "6f1c0b7e-3f4a-4d7e-9a51-2b8f0c7d9e10", "api_key": "suho_ea_0a1b2c3d4e5f_…"},
            )
        ],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tokens = ea_authenticate(**serializer.validated_data, remote_addr=request.META.get("REMOTE_ADDR"))
        return Response(TokensOutputSerializer(asdict(tokens)).data)


class EATokenRefreshApi(EAAuthView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EATokenRefreshInput"

        refresh = serializers.CharField(max_length=MAX_TOKEN_LENGTH)

    @extend_schema(
        operation_id="ea_token_refresh",
        tags=["EA"],
        summary="Exchange a refresh token for a new pair (the old refresh token is spent)",
        description="Presenting a spent refresh token ends the session (`invalid_token`): authenticate again.",
        request=InputSerializer,
        responses={200: TokensOutputSerializer, 400: ERROR_RESPONSES[400], 401: ERROR_RESPONSES[401]},
        auth=[],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tokens = ea_token_refresh(refresh_token=serializer.validated_data["refresh"])
        return Response(TokensOutputSerializer(asdict(tokens)).data)
