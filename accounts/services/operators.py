"""Operators' second factor."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.services._common import AUDIT_CATEGORY
from suho.audit import audit_record
from suho.routers import OPERATOR, operator_path


def operator_totp_enable(*, user: User) -> tuple[str, str]:
    """Give a staff user a new TOTP secret (replacing any old one); returns (secret, otpauth URI), shown once.
    From now on the admin log-in asks this user for a code. Audited (platform row: operators may have no tenant)."""
    from accounts.totp import totp_secret_new, totp_uri

    secret = totp_secret_new()
    with operator_path(), transaction.atomic(using=OPERATOR):
        User.objects.filter(pk=user.pk).update(totp_secret=secret)
        audit_record(
            tenant_id=user.tenant_id, event_type="operator_totp_enabled", category=AUDIT_CATEGORY, action="update",
            description=f"Two-factor log-in enabled for {user.username}", user_id=user.pk,
        )  # fmt: skip
    return secret, totp_uri(secret, username=user.username)
