"""Operators' second factor on every staff path: who needs it, and how a session or token shows it was given.

Staff see every tenant, so a password alone must never be enough for them. One rule decides who needs the code
(`staff_needs_second_factor`); the admin log-in form checks password and code together, the session remembers that
it did (`staff_session_mark`), `StaffSecondFactorMiddleware` signs out any staff session that lacks the mark (a
portal log-in, a session made any other way), and JWTs of staff are valid only when issued by the explicit
`/api/staff/token/` path, which asks for the code too (claim `STAFF_2FA_CLAIM`).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.totp import totp_verify

log = logging.getLogger(__name__)

STAFF_SESSION_KEY = "suho_staff_2fa"  # the session's staff user id, written only after password and code passed
STAFF_2FA_CLAIM = "staff_2fa"  # JWT claim of tokens from /api/staff/token/
STAFF_TOKEN_REFUSED = "Staff tokens come from /api/staff/token/ (password and authentication code)."  # noqa: S105
_PASSED_ATTR = "_suho_second_factor_passed"  # set on the user object between the form's check and login()


def staff_needs_second_factor(user) -> bool:
    """Staff (and superusers) need a TOTP code when they have a secret, and always with OPERATOR_2FA_REQUIRED."""
    if not (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)):
        return False
    return bool(getattr(user, "totp_secret", "")) or settings.OPERATOR_2FA_REQUIRED


def staff_second_factor_check(user, code: str | None) -> bool:
    """True when `user` needs no code or `code` is the current one; staff who must have one but have no secret
    fail (logged: an administrator must run `manage.py operator_totp_enable`). Marks the user object on success
    so the log-in that follows marks its session."""
    if not staff_needs_second_factor(user):
        return True
    if not user.totp_secret:
        log.warning("staff log-in refused: %s has no TOTP secret (manage.py operator_totp_enable)", user.pk)
        return False
    if not totp_verify(user.totp_secret, code or ""):
        return False
    setattr(user, _PASSED_ATTR, True)
    return True


def staff_login_accept(code: str | None):
    """The check a staff log-in (admin form, `/api/staff/token/`) puts on the authenticated user: staff, and the
    second factor when they need one."""
    return lambda user: user.is_staff and staff_second_factor_check(user, code)


def staff_session_verified(request) -> bool:
    return request.session.get(STAFF_SESSION_KEY) == str(request.user.pk)


@receiver(user_logged_in, dispatch_uid="accounts_staff_session_mark")
def staff_session_mark(sender, request, user, **kwargs):
    """Every log-in rewrites the mark: only a log-in whose form checked the code leaves it set."""
    if request is None or not hasattr(request, "session"):
        return
    if getattr(user, _PASSED_ATTR, False):
        request.session[STAFF_SESSION_KEY] = str(user.pk)
    else:
        request.session.pop(STAFF_SESSION_KEY, None)


class StaffSecondFactorMiddleware:
    """A staff session without the second-factor mark is signed out before the view runs, which then sees an
    anonymous visitor (the admin sends it to its log-in page, the API answers 401)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and staff_needs_second_factor(user):
            if not staff_session_verified(request):
                log.warning("staff session without second factor signed out (user %s)", user.pk)
                logout(request)
        return self.get_response(request)


def user_token_allowed(user) -> bool:
    """SIMPLE_JWT's USER_AUTHENTICATION_RULE for `/api/token/` and its refresh: active users of a tenant who need no
    second factor. Staff are refused there with the wrong-password message; they use `/api/staff/token/`."""
    return user is not None and user.is_active and user.tenant_id is not None and not staff_needs_second_factor(user)


class SecondFactorJWTAuthentication(JWTAuthentication):
    """simplejwt's JWT authentication, except that a staff user's token counts only with the `staff_2fa` claim
    (tokens from `/api/staff/token/`): one minted by the password-only path before this rule is refused."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if staff_needs_second_factor(user) and validated_token.get(STAFF_2FA_CLAIM) is not True:
            raise AuthenticationFailed(STAFF_TOKEN_REFUSED, code="second_factor_required")
        return user


class SecondFactorJWTScheme(SimpleJWTScheme):
    """The OpenAPI description of SecondFactorJWTAuthentication: simplejwt's bearer scheme."""

    target_class = SecondFactorJWTAuthentication
