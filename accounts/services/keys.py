"""EA API keys: issue, revoke, rotate.

Key format `suho_ea_<key_id>_<secret>`: the prefix lets secret scanners find leaked keys, `key_id` (12 hex digits)
finds the row, and only an Argon2 hash of the secret is stored. The plaintext is returned once, never again.
"""

from __future__ import annotations

import secrets

from django.utils import timezone

from accounts.models import ApiKey, EASession, MT5Account, User
from accounts.services._common import AUDIT_CATEGORY, _hasher, _tenant_transaction
from suho.audit import Severity as AuditSeverity
from suho.audit import audit_record

API_KEY_PREFIX = "suho_ea_"
KEY_ID_BYTES = 6  # 12 hex digits
SECRET_BYTES = 32  # token_urlsafe: 43 characters
MAX_API_KEY_LENGTH = 200

API_KEY_ALREADY_REVOKED = "This API key is already revoked."


class ApiKeyError(Exception):
    pass


def api_key_create(*, account: MT5Account, created_by: User | None = None, label: str = "") -> tuple[ApiKey, str]:
    """Issue a key for `account`; returns the row and the plaintext key, which is never available again."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    secret_hash = _hasher.hash(secret)  # slow: outside the transaction
    with _tenant_transaction(account.tenant_id):
        api_key = _api_key_insert(account=account, secret_hash=secret_hash, created_by=created_by, label=label)
    return api_key, _api_key_format(api_key.key_id, secret)


def api_key_revoke(*, api_key: ApiKey, by: User | None = None) -> ApiKey:
    """Revoke the key and end every live session it opened (their EAs are disconnected within a minute).

    Locks the key row. Revoking a revoked key changes nothing and records nothing.
    """
    with _tenant_transaction(api_key.tenant_id):
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            _api_key_revoke_locked(api_key=locked, by=by, replaced_by=None)
    return locked


def api_key_rotate(*, api_key: ApiKey, by: User | None = None) -> tuple[ApiKey, str]:
    """Issue a new key for the same account and revoke the old one (`replaced_by` points to the new key).

    Locks the old key row; raises ApiKeyError(API_KEY_ALREADY_REVOKED) for a revoked key.
    """
    secret = secrets.token_urlsafe(SECRET_BYTES)
    secret_hash = _hasher.hash(secret)
    with _tenant_transaction(api_key.tenant_id):
        old = ApiKey.objects.select_for_update().select_related("account").get(pk=api_key.pk)
        if old.revoked_at is not None:
            raise ApiKeyError(API_KEY_ALREADY_REVOKED)
        new = _api_key_insert(
            account=old.account, secret_hash=secret_hash, created_by=by, label=old.label, replaces=old
        )
        _api_key_revoke_locked(api_key=old, by=by, replaced_by=new)
    return new, _api_key_format(new.key_id, secret)


def _api_key_insert(
    *, account: MT5Account, secret_hash: str, created_by: User | None, label: str, replaces: ApiKey | None = None
) -> ApiKey:
    api_key = ApiKey.objects.create(
        tenant_id=account.tenant_id, account=account, key_id=secrets.token_hex(KEY_ID_BYTES),
        secret_hash=secret_hash, label=label, created_by=created_by,
    )  # fmt: skip
    metadata = {"key_id": api_key.key_id, "label": label}
    if replaces is not None:
        metadata["replaces_key_id"] = replaces.key_id
    audit_record(
        tenant_id=account.tenant_id, event_type="api_key_issued", category=AUDIT_CATEGORY,
        action="rotate" if replaces else "create", description=f"API key {api_key} issued for {account}",
        user_id=created_by.pk if created_by else None, account_id=account.pk, metadata=metadata,
    )  # fmt: skip
    return api_key


def _api_key_revoke_locked(*, api_key: ApiKey, by: User | None, replaced_by: ApiKey | None) -> None:
    now = timezone.now()
    api_key.revoked_at, api_key.replaced_by = now, replaced_by
    api_key.save(update_fields=["revoked_at", "replaced_by"])
    ended = EASession.objects.filter(api_key=api_key, ended_at__isnull=True).update(ended_at=now, end_reason="revoked")
    metadata = {"key_id": api_key.key_id, "sessions_ended": ended}
    if replaced_by is not None:
        metadata["replaced_by_key_id"] = replaced_by.key_id
    audit_record(
        tenant_id=api_key.tenant_id, event_type="api_key_revoked", category=AUDIT_CATEGORY,
        action="rotate" if replaced_by else "revoke", description=f"API key {api_key} revoked",
        severity=AuditSeverity.WARNING, user_id=by.pk if by else None, account_id=api_key.account_id,
        metadata=metadata,
    )  # fmt: skip


def _api_key_format(key_id: str, secret: str) -> str:
    return f"{API_KEY_PREFIX}{key_id}_{secret}"


def _api_key_parse(api_key: object) -> tuple[str | None, str]:
    """`suho_ea_<key_id>_<secret>` → (key_id, secret); (None, "") for anything else."""
    if not isinstance(api_key, str) or len(api_key) > MAX_API_KEY_LENGTH or not api_key.startswith(API_KEY_PREFIX):
        return None, ""
    key_id, _, secret = api_key.removeprefix(API_KEY_PREFIX).partition("_")
    if len(key_id) != 2 * KEY_ID_BYTES or not secret:
        return None, ""
    return key_id, secret
