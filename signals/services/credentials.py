"""Credentials for signal producers: the ML engine's per-tenant key and the per-account TradingView webhook token.

Both secrets are 256 random bits, shown once and stored only as SHA-256 (docs/decisions/0005): a slow hash protects
guessable passwords, not random tokens, and a plain digest lets the pre-auth look-up be one indexed query. The
look-up runs through the operator path (no tenant is known yet); everything after it runs in the row's tenant.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from datetime import timedelta

from django.db import connections, router
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import MT5Account
from signals.models import MLEngineKey, TradingViewWebhook
from suho.audit import audit_record
from suho.cache import cache_client, redis_unavailable
from suho.routers import OPERATOR, SERVICE, on_operator_path, operator_path
from suho.tenancy import tenant_context

log = logging.getLogger(__name__)

ML_KEY_PREFIX = "suho_ml_"
TV_TOKEN_PREFIX = "tv_"  # noqa: S105 — a prefix, not a secret
SECRET_BYTES = 32
MAX_SECRET_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last_used_at` is written at most this often


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ml_engine_key_create(*, tenant_id, label: str = "", by_user_id=None) -> tuple[MLEngineKey, str]:
    """Issue an ML-engine key for a tenant; returns the row and the plaintext, which is never available again."""
    plaintext = ML_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with _tenant_transaction(tenant_id):
        key = MLEngineKey.objects.create(tenant_id=tenant_id, label=label, key_hash=_digest(plaintext))
        audit_record(
            tenant_id=tenant_id, event_type="ml_engine_key_issued", category="security", action="create",
            description=f"{key} issued", user_id=by_user_id, metadata={"key": str(key.id), "label": label},
        )  # fmt: skip
    return key, plaintext


ML_KEY_FIELDS = MLEngineKey._meta.concrete_fields  # all of them: a deferred one would load outside the operator path
ML_KEY_LOOKUP = (
    f"SELECT {', '.join(field.column for field in ML_KEY_FIELDS)} FROM {MLEngineKey._meta.db_table}"
    " WHERE key_hash = %s AND revoked_at IS NULL"
)

# The ML engine sends every signal with its key, and the look-up was a round trip on a pooled connection of its own
# (issue 21: ~0.6 ms of a POST's ~6). A process remembers a key it found for at most ML_KEY_CACHE_S, together with
# the revocation mark in Redis it read first; the mark is read again on every use and every revocation replaces it
# (`ml_engine_key_revoke`), so a revoked key is refused at its next request on every process. The mark is random,
# never a counter: a Redis restart loses it and the next reader sets a new one, which matches no remembered key.
# Redis unreachable: every request reads the database, as before. Only if a revocation cannot reach Redis does a
# process accept the revoked key, and for at most ML_KEY_CACHE_S.
ML_KEY_CACHE_S = 10.0
ML_KEY_CACHE_MAX = 1024  # keys remembered per process (one per tenant's ML engine): the oldest make room
ML_KEY_REVOCATION_MARK = "ml_key_revocation_mark"
_remembered: dict[str, tuple[str, float, tuple]] = {}  # digest → (revocation mark, when read, the row's values)
_remembered_lock = threading.Lock()


def ml_engine_key_verify(*, key: str) -> MLEngineKey | None:
    """The live key row for a presented `suho_ml_…` key, or None (unknown, malformed or revoked)."""
    if not isinstance(key, str) or len(key) > MAX_SECRET_LENGTH or not key.startswith(ML_KEY_PREFIX):
        return None
    digest = _digest(key)
    mark = _revocation_mark()
    with operator_path():
        alias = router.db_for_read(MLEngineKey)
        values, read_at = _remembered_values(digest, mark)
        read = values is None
        if read:
            read_at = time.monotonic()
            with connections[alias].cursor() as cursor:  # written out (no ORM): every ML-engine request runs it
                cursor.execute(ML_KEY_LOOKUP, [digest])
                values = cursor.fetchone()
            if values is None:
                return None
        row = MLEngineKey.from_db(alias, [field.attname for field in ML_KEY_FIELDS], values)  # each caller its own
        touched = _touch(MLEngineKey, row)  # its new last use is remembered with it
        if (read or touched) and mark is not None and not connections[alias].in_atomic_block:  # committed rows only
            _remember(digest, mark, read_at, tuple(getattr(row, field.attname) for field in ML_KEY_FIELDS))
    return row


def _revocation_mark() -> str | None:
    """Redis's current revocation mark (one is set if there is none); None: Redis is unreachable."""
    try:
        client = cache_client()
        mark = client.get(ML_KEY_REVOCATION_MARK)
        if mark is None:
            client.set(ML_KEY_REVOCATION_MARK, secrets.token_hex(16), nx=True)
            mark = client.get(ML_KEY_REVOCATION_MARK)
        return None if mark is None else mark.decode()
    except RedisError as exc:
        redis_unavailable(exc)
        return None


def _remembered_values(digest: str, mark: str | None) -> tuple[tuple | None, float]:
    """The key's row values as read at the returned time, if remembered under `mark` for under ML_KEY_CACHE_S."""
    if mark is not None:
        with _remembered_lock:
            remembered = _remembered.get(digest)
        if remembered is not None and remembered[0] == mark and time.monotonic() - remembered[1] < ML_KEY_CACHE_S:
            return remembered[2], remembered[1]
    return None, 0.0


def _remember(digest: str, mark: str, read_at: float, values: tuple) -> None:
    with _remembered_lock:
        _remembered.pop(digest, None)
        while len(_remembered) >= ML_KEY_CACHE_MAX:
            del _remembered[next(iter(_remembered))]
        _remembered[digest] = (mark, read_at, values)


def ml_engine_key_revoke(*, key: MLEngineKey, by_user_id=None) -> None:
    """Revoke the key (audited); every process refuses it from its next request (the revocation mark)."""
    with _tenant_transaction(key.tenant_id):
        if MLEngineKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            audit_record(
                tenant_id=key.tenant_id, event_type="ml_engine_key_revoked", category="security", action="revoke",
                description=f"{key} revoked", severity="warning", user_id=by_user_id, metadata={"key": str(key.id)},
            )  # fmt: skip
    with _remembered_lock:
        _remembered.pop(key.key_hash, None)
    try:
        cache_client().set(ML_KEY_REVOCATION_MARK, secrets.token_hex(16))  # after the commit: no reader can
    except RedisError as exc:  # remember the key again with the new mark
        redis_unavailable(exc)
        log.error("ML engine key %s revoked, but other processes may accept it for up to %.0f s: Redis is "
                  "unreachable", key.pk, ML_KEY_CACHE_S)  # fmt: skip


def tradingview_webhook_create(
    *, account: MT5Account, label: str = "", by_user_id=None
) -> tuple[TradingViewWebhook, str]:
    """A secret alert URL for one account: returns the row and the token for `/api/tv/<token>/`, shown once."""
    token = TV_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with _tenant_transaction(account.tenant_id):
        hook = TradingViewWebhook.objects.create(
            tenant_id=account.tenant_id, account=account, label=label, token_hash=_digest(token)
        )
        audit_record(
            tenant_id=account.tenant_id, event_type="tradingview_webhook_issued", category="security",
            action="create", description=f"{hook} issued for {account}", user_id=by_user_id,
            account_id=account.account_id, metadata={"webhook": str(hook.id), "label": label},
        )  # fmt: skip
    return hook, token


def tradingview_webhook_resolve(*, token: str) -> TradingViewWebhook | None:
    """The live webhook for a URL token, with its account, or None (unknown, malformed or revoked)."""
    if not isinstance(token, str) or len(token) > MAX_SECRET_LENGTH or not token.startswith(TV_TOKEN_PREFIX):
        return None
    with operator_path():
        hook = (
            TradingViewWebhook.objects.select_related("account")
            .filter(token_hash=_digest(token), revoked_at__isnull=True)
            .first()
        )
        if hook is not None:
            _touch(TradingViewWebhook, hook)
    return hook


def tradingview_webhook_revoke(*, webhook: TradingViewWebhook, by_user_id=None) -> None:
    with _tenant_transaction(webhook.tenant_id):
        if TradingViewWebhook.objects.filter(pk=webhook.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            audit_record(
                tenant_id=webhook.tenant_id, event_type="tradingview_webhook_revoked", category="security",
                action="revoke", description=f"{webhook} revoked", severity="warning", user_id=by_user_id,
                account_id=webhook.account_id, metadata={"webhook": str(webhook.id)},
            )  # fmt: skip


def _touch(model, row) -> bool:
    """Record the row's use, at most once per LAST_USED_RESOLUTION; whether it wrote."""
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        model.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
        return True
    return False


def _tenant_transaction(tenant_id):
    """The tenant context on the alias this code runs on: the operator path (admin, commands) or the service role."""
    return tenant_context(tenant_id, using=OPERATOR if on_operator_path() else SERVICE)
