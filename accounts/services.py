"""Writes for accounts: EA API keys (issue, revoke, rotate) and EA authentication (API key → JWT pair, refresh).

Key format `suho_ea_<key_id>_<secret>`: the prefix lets secret scanners find leaked keys, `key_id` (12 hex digits)
finds the row, and only an Argon2 hash of the secret is stored. The plaintext is returned once, never again.

Authentication starts before any tenant is known, so the key and account are looked up through the operator path;
everything after the check runs under the account's tenant context. Every refusal raises `EAAuthError` with one of
the `Refusal` codes (the lowercase names of `binproto.AuthStatus`) and a message an EA can show its user.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import ApiKey, EASession, MT5Account, User
from accounts.throttle import EA_PAIR, EA_SOURCE, AttemptThrottle, note_once
from compliance.models import AuditLog
from compliance.services import audit_record
from suho.cache import cache_client, redis_unavailable
from suho.routers import OPERATOR, SERVICE, on_operator_path, operator_path
from suho.tenancy import tenant_context

API_KEY_PREFIX = "suho_ea_"
KEY_ID_BYTES = 6  # 12 hex digits
SECRET_BYTES = 32  # token_urlsafe: 43 characters
MAX_API_KEY_LENGTH = 200
MAX_TOKEN_LENGTH = 4096  # binproto.MAX_TOKEN_BYTES
TOKEN_SCOPE = "ea"  # noqa: S105 — claim `scope`: EA tokens are never portal tokens and the other way round

# Failed authentications back off per (client address, account) and per client address (accounts/throttle.py);
# a blocked attempt is refused before any look-up or verification.
REFUSAL_RECORD_INTERVAL_S = 60  # ea_refusal_record writes one row per account and reason per interval

AUDIT_CATEGORY = "security"
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
API_KEY_ALREADY_REVOKED = "This API key is already revoked."
REFUSAL_REASON_UNKNOWN = "Unknown refusal reason: {reason!r}."


class EAAuthError(Exception):
    """An authentication refusal: `code` is a `Refusal` value, `message` is safe to show the EA's user."""

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class ApiKeyError(Exception):
    pass


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


_hasher = PasswordHasher()


# --- MT5 accounts ------------------------------------------------------------------------------------------------


def mt5_account_create(*, user: User, name: str, by: User | None = None, **fields) -> MT5Account:
    """Add an MT5 account for a trader (in the trader's tenant); `fields` are MT5Account fields."""
    with _tenant_transaction(user.tenant_id):
        account = MT5Account.objects.create(tenant_id=user.tenant_id, user=user, name=name, **fields)
        audit_record(
            tenant_id=user.tenant_id, event_type="mt5_account_created", category="account", action="create",
            description=f"MT5 account {account} added", user_id=(by or user).pk, account_id=account.pk,
            metadata={"name": name, "account_type": account.account_type},
        )  # fmt: skip
    return account


# --- API keys -----------------------------------------------------------------------------------------------------


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
        severity=AuditLog.Severity.WARNING, user_id=by.pk if by else None, account_id=api_key.account_id,
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
                severity=AuditLog.Severity.WARNING, account_id=claims.account_id,
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
            action="refuse", description=f"EA authentication refused: {code}", severity=AuditLog.Severity.WARNING,
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


# --- helpers ------------------------------------------------------------------------------------------------------


def _tenant_transaction(tenant_id: UUID):
    """The tenant context on the alias this code runs on: the operator path (admin, commands) or the service role."""
    return tenant_context(tenant_id, using=OPERATOR if on_operator_path() else SERVICE)


def _uuid_or_none(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value)) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        return None


def _ip_or_none(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


# --- Portal: sign-up, EA settings, emergency stop -------------------------------------------------------------

EA_SETTING_FIELDS = frozenset({
    "sl_multiplier", "tp_multiplier", "slippage_tolerance_pips", "max_spread_points", "magic_number",
    "comment_prefix", "strategy_parameters",
})  # fmt: skip
EA_SETTING_UNKNOWN = "not an EA setting: {names}"


def tenant_signup(*, name: str, username: str, email: str, password: str) -> User:
    """Create a tenant and its first user (identity rows: operator alias), and audit the sign-up in its chain.

    The caller validates uniqueness (the form does); the database's unique constraints are the last word.
    """
    from django.utils.text import slugify

    from accounts.models import Tenant

    with transaction.atomic(using=OPERATOR):
        tenant = Tenant.objects.create(name=name, slug=f"{slugify(name)[:80] or 'tenant'}-{secrets.token_hex(4)}")
        user = User(username=username, email=email, tenant=tenant)
        user.set_password(password)
        user.save()
    with tenant_context(tenant.id):
        audit_record(
            tenant_id=tenant.id, event_type="tenant_signed_up", category="account", action="create",
            description=f"Tenant {tenant.slug} signed up", user_id=user.pk, metadata={"slug": tenant.slug},
        )  # fmt: skip
    return user


def account_ea_settings_update(*, account: MT5Account, changes: dict, by: User) -> MT5Account:
    """Change the EA settings (seed §2.2 item 3): lock the row, bump `config_version`, audit old → new, push the
    configuration to the EA after commit. No change, no bump. ValueError (EA_SETTING_UNKNOWN) before any write."""
    from trading.outbound import account_config_publish_on_commit

    unknown = sorted(set(changes) - EA_SETTING_FIELDS)
    if unknown:
        raise ValueError(EA_SETTING_UNKNOWN.format(names=", ".join(unknown)))
    with _tenant_transaction(account.tenant_id):
        locked = MT5Account.objects.select_for_update(no_key=True).get(account_id=account.account_id)
        diff = {k: {"old": getattr(locked, k), "new": v} for k, v in changes.items() if getattr(locked, k) != v}
        if not diff:
            return locked
        for name, change in diff.items():
            setattr(locked, name, change["new"])
        locked.config_version += 1
        locked.save(update_fields=[*diff, "config_version"])
        audit_record(
            tenant_id=locked.tenant_id, event_type="ea_settings_changed", category="config", action="update",
            description=f"EA settings of {locked} changed: {', '.join(sorted(diff))}", user_id=by.pk,
            account_id=locked.account_id, metadata={"changes": diff, "config_version": locked.config_version},
        )  # fmt: skip
        account_config_publish_on_commit(locked)
    return locked


def account_emergency_stop(*, account: MT5Account, by: User) -> MT5Account:
    """Stop trading now: `emergency_stop` on (risk parameters pushed with trading off) and a DISABLE_TRADING
    command, delivered on reconnect if the EA is offline. Both audited by the services they go through."""
    from compliance.services import account_risk_parameters_update
    from trading.outbound import command_issue

    with _tenant_transaction(account.tenant_id):
        account = account_risk_parameters_update(account=account, changes={"emergency_stop": True}, actor=by)
        command_issue(
            tenant_id=account.tenant_id, account_id=account.account_id, kind="disable_trading",
            issued_by=f"user:{by.username}", reason="emergency stop",
        )  # fmt: skip
    return account


# --- Operator actions (admin): each change audited by the services it goes through ------------------------------


def account_trading_disable(*, account: MT5Account, by: User) -> MT5Account:
    """Trading off (risk parameters pushed) and DISABLE_TRADING sent to the EA."""
    from compliance.services import account_risk_parameters_update
    from trading.outbound import command_issue

    with _tenant_transaction(account.tenant_id):
        account = account_risk_parameters_update(account=account, changes={"trading_enabled": False}, actor=by)
        command_issue(
            tenant_id=account.tenant_id, account_id=account.account_id, kind="disable_trading",
            issued_by=f"operator:{by.username}", reason="disabled by an operator",
        )  # fmt: skip
    return account


def account_positions_close_all(*, account: MT5Account, by: User):
    """CLOSE_ALL_POSITIONS to the EA (delivered on reconnect if offline); the command row is the audit's subject."""
    from trading.outbound import command_issue

    return command_issue(
        tenant_id=account.tenant_id, account_id=account.account_id, kind="close_all",
        issued_by=f"operator:{by.username}", reason="closed by an operator",
    )  # fmt: skip


def tenant_emergency_stop(*, tenant, by: User) -> int:
    """Stop a whole tenant: `trading_enabled` off on the tenant (audited) and an emergency stop on each of its
    active accounts. Returns the accounts stopped."""
    from accounts.models import Tenant

    with operator_path(), transaction.atomic(using=OPERATOR):
        Tenant.objects.filter(pk=tenant.pk).update(trading_enabled=False)
        accounts = list(MT5Account.objects.filter(tenant_id=tenant.pk, is_active=True))
        with _tenant_transaction(tenant.pk):
            audit_record(
                tenant_id=tenant.pk, event_type="tenant_emergency_stop", category="config", action="update",
                description=f"Emergency stop for tenant {tenant} by {by.username}", user_id=by.pk,
                severity=AuditLog.Severity.WARNING, metadata={"accounts": [str(a.account_id) for a in accounts]},
            )  # fmt: skip
        for account in accounts:
            account_emergency_stop(account=account, by=by)
    return len(accounts)


# --- Operators' second factor ------------------------------------------------------------------------------------


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
