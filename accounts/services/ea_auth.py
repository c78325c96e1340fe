"""EA authentication: account id and API key → JWT pair and EA session, refresh, access check, refusals.

Authentication starts before any tenant is known, so the key and account are looked up through the operator path;
everything after the check runs under the account's tenant context. Every refusal raises `EAAuthError` with one of
the `Refusal` codes (the lowercase names of `binproto.AuthStatus`) and a message an EA can show its user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from uuid import UUID

from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework.status import HTTP_401_UNAUTHORIZED, HTTP_429_TOO_MANY_REQUESTS
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import ApiKey, EASession, MT5Account
from accounts.services._common import AUDIT_CATEGORY, _hasher, _ip_or_none, _tenant_transaction, _uuid_or_none
from accounts.services.keys import SECRET_BYTES, _api_key_parse
from accounts.throttle import EA_PAIR, EA_SOURCE, AttemptThrottle, note_once
from suho.api_errors import ApiError
from suho.audit import Severity as AuditSeverity
from suho.audit import audit_record
from suho.cache import cache_client, redis_unavailable
from suho.routers import OPERATOR, operator_path

MAX_TOKEN_LENGTH = 4096  # binproto.MAX_TOKEN_BYTES
TOKEN_SCOPE = "ea"  # noqa: S105 — claim `scope`: EA tokens are never portal tokens and the other way round

# Failed authentications back off per (client address, account) and per client address (accounts/throttle.py);
# a blocked attempt is refused before any look-up or verification.
REFUSAL_RECORD_INTERVAL_S = 60  # ea_refusal_record writes one row per account and reason per interval
VERIFIED_KEY_TTL_S = 24 * 3600  # a key's successful Argon2 verification is remembered this long (_verified_key)


class Refusal(StrEnum):
    """Why authentication was refused: `binproto.AuthStatus` names, lowercase (the consumer maps them back)."""

    UNKNOWN_ACCOUNT = "unknown_account"
    BAD_KEY = "bad_key"
    REVOKED_KEY = "revoked_key"
    EXPIRED_TOKEN = "expired_token"  # noqa: S105
    INVALID_TOKEN = "invalid_token"  # noqa: S105
    UNSUPPORTED_VERSION = "unsupported_version"
    CLOCK_SKEW = "clock_skew"
    RATE_LIMITED = "rate_limited"


AUTH_UNKNOWN_ACCOUNT = "No MT5 account has this account id; copy the account id from the portal."
AUTH_ACCOUNT_DISABLED = "This MT5 account is disabled; enable it in the portal."
AUTH_BAD_KEY = "The API key is not valid for this account; copy the key from the portal again."
AUTH_REVOKED_KEY = "This API key has been revoked; issue a new key in the portal."
AUTH_RATE_LIMITED = "Too many failed authentication attempts; wait and try again."
TOKEN_EXPIRED = "The token has expired; refresh it, or authenticate again with the API key."  # noqa: S105
TOKEN_INVALID = "The token is not valid; authenticate again with the API key."  # noqa: S105
SESSION_ENDED = "The session has ended; authenticate again with the API key."
REFRESH_TOKEN_REUSED = "This refresh token was already used; the session has been ended. Authenticate again."  # noqa: S105
REFUSAL_REASON_UNKNOWN = "Unknown refusal reason: {reason!r}."


class EAAuthError(ApiError):
    """An authentication refusal: `code` is a `Refusal` value, `message` is safe to show the EA's user. The API
    answers 401 with the EA's challenge, or 429 with Retry-After when rate limited."""

    www_authenticate = 'Bearer realm="suho-ea"'

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None):
        http_status = HTTP_429_TOO_MANY_REQUESTS if code == Refusal.RATE_LIMITED else HTTP_401_UNAUTHORIZED
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class EATokens:
    access: str
    refresh: str
    session_id: UUID
    access_expires_at: datetime
    refresh_expires_at: datetime
    tenant_id: UUID
    account_id: UUID


@dataclass(frozen=True)
class EAClaims:
    tenant_id: UUID
    account_id: UUID
    session_id: UUID
    expires_at: datetime


# --- EA authentication --------------------------------------------------------------------------------------------


def ea_authenticate(*, account_id: UUID | str, api_key: str, remote_addr: str | None = None) -> EATokens:
    """Exchange an account id and API key for an access/refresh pair and a new EA session.

    Raises EAAuthError: unknown_account, bad_key (also for a valid key of another account), revoked_key,
    rate_limited (with `retry_after_s`). Every path spends one Argon2 verification, except a rate-limited attempt,
    which is refused before any look-up.
    """
    now = timezone.now()
    remote_addr = _ip_or_none(remote_addr)
    account_uuid = _uuid_or_none(account_id)
    throttle = AttemptThrottle(
        "ea", source=remote_addr, principal=str(account_uuid), pair=EA_PAIR, per_source=EA_SOURCE
    )
    blocked_s = throttle.wait_s()
    if blocked_s:
        _rate_limited_note(throttle=throttle, account_id=account_uuid, remote_addr=remote_addr, retry_after_s=blocked_s)
        raise EAAuthError(Refusal.RATE_LIMITED, AUTH_RATE_LIMITED, retry_after_s=blocked_s)

    key_id, secret = _api_key_parse(api_key)
    with operator_path():  # pre-auth look-up: no tenant is known yet
        account = MT5Account.objects.select_related("tenant").filter(account_id=account_uuid).first()
        key = ApiKey.objects.filter(key_id=key_id).first() if key_id else None
    secret_ok = _secret_verify(key, secret)

    refusal = _auth_refusal(account=account, key=key, secret_ok=secret_ok)
    if refusal is not None:
        throttle.failed()
        _refusal_write(
            account=account, code=refusal.code, message=refusal.message, remote_addr=remote_addr,
            metadata={"claimed_account_id": str(account_id)[:64], "key_id": key_id},
        )  # fmt: skip
        raise refusal

    with _tenant_transaction(account.tenant_id):
        session = EASession.objects.create(
            tenant_id=account.tenant_id, account=account, api_key=key, remote_addr=remote_addr, last_seen_at=now
        )
        updates = {"last_used_at": now}
        if _hasher.check_needs_rehash(key.secret_hash):
            updates["secret_hash"] = _hasher.hash(secret)
        ApiKey.objects.filter(pk=key.pk).update(**updates)
        audit_record(
            tenant_id=account.tenant_id, event_type="ea_auth_succeeded", category=AUDIT_CATEGORY, action="login",
            description=f"EA authenticated with API key {key}", account_id=account.pk, ip_address=remote_addr,
            metadata={"key_id": key.key_id, "session_id": str(session.session_id)},
        )  # fmt: skip
    throttle.succeeded()
    return _tokens_issue(session=session, generation=0)


def ea_token_refresh(*, refresh_token: str) -> EATokens:
    """Exchange a refresh token for a new pair; the old refresh token is spent (its `gen` no longer matches).

    Presenting a spent refresh token ends the session: one of two holders is not the EA (token theft defence).
    Locks the session row. Raises EAAuthError: expired_token, invalid_token, revoked_key, unknown_account
    (account or tenant disabled).
    """
    token = _token_decode(RefreshToken, refresh_token)
    claims = _claims(token)
    generation = token.get("gen")
    if not isinstance(generation, int):
        raise EAAuthError(Refusal.INVALID_TOKEN, TOKEN_INVALID)
    now = timezone.now()
    with _tenant_transaction(claims.tenant_id):
        session = (
            EASession.objects.select_for_update(of=("self",))
            .select_related("api_key", "account", "tenant")
            .filter(session_id=claims.session_id, account_id=claims.account_id)
            .first()
        )
        refusal = _session_refusal(session)
        if refusal is None and generation != session.refresh_generation:
            refusal = EAAuthError(Refusal.INVALID_TOKEN, REFRESH_TOKEN_REUSED)
            session.ended_at, session.end_reason = now, "refresh_reuse"
            session.save(update_fields=["ended_at", "end_reason"])
            audit_record(
                tenant_id=claims.tenant_id, event_type="ea_refresh_reuse", category=AUDIT_CATEGORY, action="refuse",
                description="A spent refresh token was presented; the EA session was ended",
                severity=AuditSeverity.WARNING, account_id=claims.account_id,
                metadata={"session_id": str(session.session_id), "presented_gen": generation,
                          "current_gen": session.refresh_generation},
            )  # fmt: skip
        elif refusal is None:
            session.refresh_generation += 1
            session.last_seen_at = now
            session.save(update_fields=["refresh_generation", "last_seen_at"])
    if refusal is not None:
        raise refusal  # after the block: ending a session on reuse must commit
    return _tokens_issue(session=session, generation=session.refresh_generation)


def ea_access_verify(*, token: str) -> EAClaims:
    """Check an access token's signature, expiry and claims; no database. Raises EAAuthError: expired_token,
    invalid_token. A revoked key's tokens stay valid until they expire: pair with `ea_session_active`."""
    return _claims(_token_decode(AccessToken, token))


def ea_session_end(*, session_id: UUID, tenant_id: UUID, reason: str) -> bool:
    """End a live session (logout, closed by the gateway); False if it was unknown or already ended."""
    with _tenant_transaction(tenant_id):
        ended = EASession.objects.filter(session_id=session_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=reason[:40]
        )
    return ended == 1


def ea_refusal_record(
    *, account_id: UUID | str | None, reason: str, remote_addr: str | None = None, detail: str = ""
) -> bool:
    """Keep the last refusal the gateway made on its own (unsupported_version, clock_skew) for the portal.

    `account_id` is what the EA claimed: unknown ids are ignored. At most one write per account and reason every
    REFUSAL_RECORD_INTERVAL_S, so a looping EA cannot flood the audit log. Returns whether it wrote.
    """
    if reason not in Refusal._value2member_map_:
        raise ValueError(REFUSAL_REASON_UNKNOWN.format(reason=reason))
    account_uuid = _uuid_or_none(account_id)
    if account_uuid is None or not note_once(f"ea_refusal:{account_uuid}:{reason}", REFUSAL_RECORD_INTERVAL_S):
        return False
    with operator_path():
        account = MT5Account.objects.filter(account_id=account_uuid).first()
    if account is None:
        return False
    _refusal_write(
        account=account, code=reason, message=detail or reason, remote_addr=_ip_or_none(remote_addr), metadata={}
    )
    return True


def _auth_refusal(*, account: MT5Account | None, key: ApiKey | None, secret_ok: bool) -> EAAuthError | None:
    if account is None:
        return EAAuthError(Refusal.UNKNOWN_ACCOUNT, AUTH_UNKNOWN_ACCOUNT)
    if key is None or not secret_ok or key.account_id != account.account_id:
        return EAAuthError(Refusal.BAD_KEY, AUTH_BAD_KEY)
    if key.revoked_at is not None:
        return EAAuthError(Refusal.REVOKED_KEY, AUTH_REVOKED_KEY)
    if not account.is_active or not account.tenant.is_active:
        return EAAuthError(Refusal.UNKNOWN_ACCOUNT, AUTH_ACCOUNT_DISABLED)
    return None


def _session_refusal(session: EASession | None) -> EAAuthError | None:
    if session is None:
        return EAAuthError(Refusal.INVALID_TOKEN, TOKEN_INVALID)
    if session.api_key.revoked_at is not None:
        return EAAuthError(Refusal.REVOKED_KEY, AUTH_REVOKED_KEY)
    if session.ended_at is not None:
        return EAAuthError(Refusal.INVALID_TOKEN, SESSION_ENDED)
    if not session.account.is_active or not session.tenant.is_active:
        return EAAuthError(Refusal.UNKNOWN_ACCOUNT, AUTH_ACCOUNT_DISABLED)
    return None


def _refusal_write(
    *, account: MT5Account | None, code: str, message: str, remote_addr: str | None, metadata: dict
) -> None:
    """Last refusal on the account (for the portal's diagnostics) and an audit row, through the operator path:
    the refused party proved no tenant."""
    now = timezone.now()
    with operator_path(), transaction.atomic(using=OPERATOR):
        if account is not None:
            MT5Account.objects.filter(pk=account.pk).update(last_refusal_reason=code, last_refusal_at=now)
        audit_record(
            tenant_id=account.tenant_id if account else None, event_type="ea_auth_failed", category=AUDIT_CATEGORY,
            action="refuse", description=f"EA authentication refused: {code}", severity=AuditSeverity.WARNING,
            account_id=account.pk if account else None, ip_address=remote_addr,
            metadata={"code": str(code), "message": message, **metadata},
        )  # fmt: skip


def _secret_verify(key: ApiKey | None, secret: str) -> bool:
    """Whether `secret` is the key's: one Argon2 verification (against a throw-away hash when there is no key, so
    timing tells nothing), unless this secret was verified against this very hash before (`_verified_key`)."""
    if key is not None and _verified_key_seen(key, secret):
        return True
    try:
        ok = _hasher.verify(key.secret_hash if key else _dummy_hash(), secret) and key is not None
    except (VerificationError, InvalidHashError):
        return False
    if ok:
        _verified_key_note(key, secret)
    return ok


def _verified_key(key: ApiKey, secret: str) -> tuple[str, str]:
    """(Redis key, value) that remembers a successful verification, shared by every process.

    It proves only "this secret matches this stored hash": the key's revocation and its account's and tenant's
    state are read from the database at every authentication, so revoking or rotating a key, or disabling its
    account or tenant, refuses the next HELLO at once on every process. A new hash (a rotation issues a new key; a
    rehash) is a new value. The value is an HMAC under SECRET_KEY: whoever reads Redis learns nothing they can
    check a guess against, and whoever writes to it cannot make a wrong secret pass."""
    message = f"{key.key_id}\0{key.secret_hash}\0{secret}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
    return f"ea_key_verified:{key.key_id}", digest


def _verified_key_seen(key: ApiKey, secret: str) -> bool:
    name, digest = _verified_key(key, secret)
    try:
        seen = cache_client().get(name)
    except RedisError as exc:
        redis_unavailable(exc)
        return False
    return seen is not None and hmac.compare_digest(seen, digest.encode())


def _verified_key_note(key: ApiKey, secret: str) -> None:
    name, digest = _verified_key(key, secret)
    try:
        cache_client().set(name, digest, ex=VERIFIED_KEY_TTL_S)
    except RedisError as exc:
        redis_unavailable(exc)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(SECRET_BYTES))


# --- rate-limited refusals ---------------------------------------------------------------------------------------


def _rate_limited_note(
    *, throttle: AttemptThrottle, account_id: UUID | None, remote_addr: str | None, retry_after_s: int
) -> None:
    """Record a rate-limited refusal once per block, not once per attempt: a flood must not become writes."""
    if not note_once("ea:" + "|".join(counter.key for counter in throttle.blocking), retry_after_s):
        return
    with operator_path():
        account = MT5Account.objects.filter(account_id=account_id).first() if account_id else None
    _refusal_write(
        account=account, code=Refusal.RATE_LIMITED, message=AUTH_RATE_LIMITED, remote_addr=remote_addr,
        metadata={"claimed_account_id": str(account_id) if account_id else None, "retry_after_s": retry_after_s},
    )  # fmt: skip


# --- tokens -------------------------------------------------------------------------------------------------------


def _tokens_issue(*, session: EASession, generation: int) -> EATokens:
    refresh = RefreshToken()
    refresh["scope"] = TOKEN_SCOPE
    refresh["tenant_id"] = str(session.tenant_id)
    refresh["account_id"] = str(session.account_id)
    refresh["session_id"] = str(session.session_id)
    refresh["gen"] = generation
    access = refresh.access_token
    del access["gen"]
    return EATokens(
        access=str(access), refresh=str(refresh), session_id=session.session_id,
        access_expires_at=datetime.fromtimestamp(access["exp"], UTC),
        refresh_expires_at=datetime.fromtimestamp(refresh["exp"], UTC),
        tenant_id=session.tenant_id, account_id=session.account_id,
    )  # fmt: skip


def _token_decode(token_class, token: object):
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise EAAuthError(Refusal.INVALID_TOKEN, TOKEN_INVALID)  # AccessToken(None) would mint a new token
    try:
        return token_class(token)
    except ExpiredTokenError as exc:
        raise EAAuthError(Refusal.EXPIRED_TOKEN, TOKEN_EXPIRED) from exc
    except TokenError as exc:
        raise EAAuthError(Refusal.INVALID_TOKEN, TOKEN_INVALID) from exc


def _claims(token) -> EAClaims:
    tenant_id, account_id, session_id = (_uuid_or_none(token.get(c)) for c in ("tenant_id", "account_id", "session_id"))
    if token.get("scope") != TOKEN_SCOPE or None in (tenant_id, account_id, session_id):
        raise EAAuthError(Refusal.INVALID_TOKEN, TOKEN_INVALID)
    return EAClaims(
        tenant_id=tenant_id, account_id=account_id, session_id=session_id,
        expires_at=datetime.fromtimestamp(token["exp"], UTC),
    )  # fmt: skip
