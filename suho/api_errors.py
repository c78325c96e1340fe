"""The REST API's one error format, `{"error": {"code": ..., "message": ...}}`, and the one DRF exception handler
(`REST_FRAMEWORK["EXCEPTION_HANDLER"]`) that renders every exception into it, keyed on the exception's type.

Apps write no envelopes and no handlers: they raise DRF's exceptions (ValidationError, NotFound, ...) or a subclass
of `ApiError` that carries its code, message and HTTP status. suho imports no app (contract plumbing-below-apps),
so the apps' refusals come here by subclassing, not by being listed.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

INVALID_REQUEST = "invalid_request"
NOT_FOUND = "not_found"
NOT_AUTHENTICATED = "not_authenticated"
PERMISSION_DENIED = "permission_denied"
# The challenge of a 401 from a view without authenticators (the token endpoints): the JWT's, as simplejwt names it.
DEFAULT_CHALLENGE = 'Bearer realm="api"'


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="What went wrong, for programs (each response names its codes).")
    message = serializers.CharField(help_text="What went wrong, for people; safe to show the user.")

    class Meta:
        ref_name = "ErrorBody"


class ErrorSerializer(serializers.Serializer):
    """The error format's OpenAPI schema, the one every endpoint's 4xx responses name."""

    error = ErrorBodySerializer()

    class Meta:
        ref_name = "Error"


class ApiError(Exception):
    """A refusal the API shows as it is. Subclasses set `code` and `http_status` (or pass them per instance);
    `retry_after_s` becomes Retry-After, `www_authenticate` the challenge of a 401."""

    code: str = INVALID_REQUEST
    http_status: int = status.HTTP_400_BAD_REQUEST
    retry_after_s: int | None = None
    www_authenticate: str | None = None

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status


def error_body(code: str, message: str) -> dict:
    """The envelope, also for answers outside DRF (the NATS intake, the 503 of an exhausted pool)."""
    return {"error": {"code": str(code), "message": message}}


def validation_message(detail) -> str:
    """A serializer's errors as one line: `field: message; other: message`."""
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in detail.items())
    return " ".join(str(m) for m in detail)


def api_exception_handler(exc, context) -> Response | None:
    """Every REST view's errors. None (an exception that is no refusal) lets it propagate: a 500, or the 503 of
    suho.errors for an exhausted pool."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, ApiError):
        return _response(exc.code, exc.message, exc.http_status, exc.retry_after_s, exc.www_authenticate)
    if not isinstance(exc, exceptions.APIException):
        return None
    wait = getattr(exc, "wait", None)
    retry_after_s = int(wait) if wait else None
    if isinstance(exc, exceptions.ValidationError):
        return _response(INVALID_REQUEST, validation_message(exc.detail), status.HTTP_400_BAD_REQUEST, retry_after_s)
    if isinstance(exc, exceptions.NotFound):
        return _response(NOT_FOUND, str(exc.detail), status.HTTP_404_NOT_FOUND, retry_after_s)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # 401 also where DRF would say 403 for lack of an authenticator: the token endpoints refuse credentials
        challenge = getattr(exc, "auth_header", None) or DEFAULT_CHALLENGE
        return _response(NOT_AUTHENTICATED, str(exc.detail), status.HTTP_401_UNAUTHORIZED, retry_after_s, challenge)
    if isinstance(exc, exceptions.PermissionDenied):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else PERMISSION_DENIED
        return _response(code, str(exc.detail), status.HTTP_403_FORBIDDEN, retry_after_s)
    # an unparsable body, a wrong media type or method, a throttle
    return _response(INVALID_REQUEST, str(exc.detail), exc.status_code, retry_after_s)


def _response(
    code: str, message: str, http_status: int, retry_after_s: int | None = None, www_authenticate: str | None = None
) -> Response:
    headers = {}
    if retry_after_s:
        headers["Retry-After"] = str(retry_after_s)
    if www_authenticate and http_status == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = www_authenticate
    return Response(error_body(code, message), status=http_status, headers=headers)
