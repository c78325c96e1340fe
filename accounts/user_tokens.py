"""Traders' JWT pairs for scripts (`/api/token/`): refresh tokens rotate within a family, a spent one presented
again revokes the family, and every token dies when the user's password changes.

Each log-in starts a `UserTokenFamily`; its refresh token carries the family id and a generation. A refresh spends
the presented token (the family's generation moves on) and returns a new pair. A refresh token presented a second
time means two holders, one of them not the user: the whole family is revoked and audited, so the thief's fresh
token dies with the victim's. simplejwt's `CHECK_REVOKE_TOKEN` puts a fingerprint of the password hash in every
token; access tokens with an old fingerprint are refused by JWT authentication and refresh tokens here, so a
password change ends every token issued before it. Access tokens of a revoked family live out their 15 minutes.
"""

from __future__ import annotations

from functools import partial
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import User, UserTokenFamily
from accounts.staff_auth import user_token_allowed
from suho.audit import Severity as AuditSeverity
from suho.audit import audit_record
from suho.routers import OPERATOR, operator_path

FAMILY_CLAIM = "family"
GENERATION_CLAIM = "gen"

REFRESH_INVALID = "The refresh token is not valid or has expired; log in again."
REFRESH_REVOKED = "This refresh token has been revoked; log in again."
REFRESH_REUSED = "This refresh token was already used; every token of this log-in is revoked. Log in again."
PASSWORD_CHANGED = "The password has changed since this token was issued; log in again."  # noqa: S105


class UserTokenError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def user_tokens_issue(*, user: User) -> dict[str, str]:
    """A new family and its first pair, for a user already authenticated (and allowed: not staff)."""
    with operator_path(), transaction.atomic(using=OPERATOR):
        family = UserTokenFamily.objects.create(user=user, tenant_id=user.tenant_id)
    return _pair(user=user, family=family)


def user_tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Spend `refresh` for a new pair. Locks the family row. Raises UserTokenError; a reused token or a changed
    password also revokes the family (committed before the error is raised)."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise UserTokenError(REFRESH_INVALID) from exc
    family_id, generation = token.get(FAMILY_CLAIM), token.get(GENERATION_CLAIM)
    if not isinstance(family_id, str) or not isinstance(generation, int):
        raise UserTokenError(REFRESH_INVALID)  # also tokens minted before families: log in again
    try:
        family_id = UUID(family_id)
    except ValueError as exc:
        raise UserTokenError(REFRESH_INVALID) from exc
    now = timezone.now()
    with operator_path(), transaction.atomic(using=OPERATOR):
        family = UserTokenFamily.objects.select_for_update(of=("self",)).select_related("user").filter(pk=family_id)
        family = family.first()
        error, reason = _refusal(family=family, token=token, generation=generation)
        if reason:
            family.revoked_at, family.revoke_reason = now, reason
            family.save(update_fields=["revoked_at", "revoke_reason"])
            _audit_revoked(family=family, reason=reason, presented=generation)
        elif error is None:
            family.generation += 1
            family.last_refreshed_at = now
            family.save(update_fields=["generation", "last_refreshed_at"])
    if error is not None:
        raise UserTokenError(error)  # after the block: revoking the family must commit
    return _pair(user=family.user, family=family)


def _refusal(*, family: UserTokenFamily | None, token, generation: int) -> tuple[str | None, str]:
    """(message, revoke reason): (None, "") when the refresh may go on."""
    if family is None or family.revoked_at is not None:
        return REFRESH_REVOKED, ""
    if not user_token_allowed(family.user) or str(family.user_id) != str(token.get(api_settings.USER_ID_CLAIM)):
        return REFRESH_REVOKED, "user_not_allowed"
    if token.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(family.user.password):
        return PASSWORD_CHANGED, "password_changed"
    if generation != family.generation:
        return REFRESH_REUSED, "refresh_reuse"
    return None, ""


def _pair(*, user: User, family: UserTokenFamily) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)  # user id and the password fingerprint (CHECK_REVOKE_TOKEN)
    refresh[FAMILY_CLAIM] = str(family.id)
    refresh[GENERATION_CLAIM] = family.generation
    access = refresh.access_token
    del access[GENERATION_CLAIM]
    return {"refresh": str(refresh), "access": str(access)}


def _audit_revoked(*, family: UserTokenFamily, reason: str, presented: int) -> None:
    """After the revocation commits, an audit row in the user's tenant chain (suho.audit.audit_record, own_chain)."""
    fields = dict(
        tenant_id=family.tenant_id, event_type="user_token_family_revoked", category="security", action="revoke",
        description=f"API tokens of a log-in revoked ({reason})", severity=AuditSeverity.WARNING,
        user_id=family.user_id,
        metadata={"family": str(family.id), "reason": reason, "presented_gen": presented,
                  "current_gen": family.generation},
    )  # fmt: skip
    transaction.on_commit(partial(audit_record, own_chain=True, **fields), using=OPERATOR)
