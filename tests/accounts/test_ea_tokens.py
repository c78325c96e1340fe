"""EA tokens: access verification without the database, refresh rotation with reuse detection, session liveness."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import EASession
from accounts.selectors import ea_session_active
from accounts.services import (
    AUTH_REVOKED_KEY,
    REFRESH_TOKEN_REUSED,
    SESSION_ENDED,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    EAAuthError,
    Refusal,
    api_key_revoke,
    ea_access_verify,
    ea_authenticate,
    ea_session_end,
    ea_token_refresh,
)
from compliance.models import AuditLog
from suho.routers import operator_path


@pytest.fixture
def tokens(account, issued, remote_addr):
    return ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)


def session_of(tokens) -> EASession:
    with operator_path():
        return EASession.objects.get(session_id=tokens.session_id)


def refusal(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(EAAuthError) as caught:
        call(**kwargs)
    return caught.value.code, caught.value.message


def ea_claims(tokens) -> dict:
    return {"scope": "ea", "tenant_id": str(tokens.tenant_id), "account_id": str(tokens.account_id),
            "session_id": str(tokens.session_id)}  # fmt: skip


# --- access tokens ---------------------------------------------------------------------------------------------------


def test_access_token_verifies_without_the_database(tokens, django_assert_num_queries):
    with django_assert_num_queries(0):
        claims = ea_access_verify(token=tokens.access)
    assert (claims.tenant_id, claims.account_id, claims.session_id) == (
        tokens.tenant_id, tokens.account_id, tokens.session_id,
    )  # fmt: skip
    assert claims.expires_at == tokens.access_expires_at
    assert timedelta(minutes=14) < claims.expires_at - timezone.now() <= timedelta(minutes=15)


def test_expired_access_token_signed_with_the_real_key_is_expired_token(tokens):
    forged = AccessToken()
    for claim, value in ea_claims(tokens).items():
        forged[claim] = value
    forged.set_exp(from_time=timezone.now() - timedelta(hours=1))
    assert refusal(ea_access_verify, token=str(forged)) == (Refusal.EXPIRED_TOKEN, TOKEN_EXPIRED)


def test_token_signed_with_another_key_is_invalid_token(tokens):
    payload = jwt.decode(tokens.access, options={"verify_signature": False})
    forged = jwt.encode(payload, "not-the-signing-key-" * 3, algorithm="HS256")
    assert refusal(ea_access_verify, token=forged) == (Refusal.INVALID_TOKEN, TOKEN_INVALID)


def test_token_with_another_tenant_swapped_in_is_invalid_token(tokens):
    header, _payload, signature = tokens.access.split(".")
    claims = jwt.decode(tokens.access, options={"verify_signature": False}) | {"tenant_id": str(uuid.uuid4())}
    tampered = jwt.encode(claims, "x" * 32, algorithm="HS256").split(".")[1]
    assert refusal(ea_access_verify, token=f"{header}.{tampered}.{signature}")[0] == Refusal.INVALID_TOKEN


def test_token_without_the_ea_claims_is_invalid_token(committed):
    portal_like = AccessToken()
    portal_like["user_id"] = str(uuid.uuid4())
    assert refusal(ea_access_verify, token=str(portal_like))[0] == Refusal.INVALID_TOKEN


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c", b"bytes", "x" * 5000])
def test_garbage_is_invalid_token(token):
    assert refusal(ea_access_verify, token=token) == (Refusal.INVALID_TOKEN, TOKEN_INVALID)


# --- refresh -------------------------------------------------------------------------------------------------------


def test_refresh_issues_a_new_pair_for_the_same_session(tokens):
    renewed = ea_token_refresh(refresh_token=tokens.refresh)

    assert renewed.session_id == tokens.session_id
    assert (renewed.tenant_id, renewed.account_id) == (tokens.tenant_id, tokens.account_id)
    assert renewed.access != tokens.access and renewed.refresh != tokens.refresh
    assert ea_access_verify(token=renewed.access).session_id == tokens.session_id
    assert session_of(tokens).refresh_generation == 1
    assert ea_token_refresh(refresh_token=renewed.refresh).session_id == tokens.session_id
    assert session_of(tokens).refresh_generation == 2


def test_reusing_a_spent_refresh_token_ends_the_session(tokens):
    renewed = ea_token_refresh(refresh_token=tokens.refresh)

    assert refusal(ea_token_refresh, refresh_token=tokens.refresh) == (Refusal.INVALID_TOKEN, REFRESH_TOKEN_REUSED)

    session = session_of(tokens)
    assert (session.ended_at is not None, session.end_reason, session.refresh_generation) == (
        True, "refresh_reuse", 1,
    )  # fmt: skip
    assert not ea_session_active(session_id=tokens.session_id, tenant_id=tokens.tenant_id)
    # the legitimate holder's newer token dies with the session: both parties must authenticate again
    assert refusal(ea_token_refresh, refresh_token=renewed.refresh) == (Refusal.INVALID_TOKEN, SESSION_ENDED)
    with operator_path():
        [audit] = AuditLog.objects.filter(event_type="ea_refresh_reuse")
    assert (audit.tenant_id, audit.account_id, audit.severity) == (tokens.tenant_id, tokens.account_id, "warning")


def test_refresh_after_the_key_is_revoked_is_revoked_key(issued, tokens):
    api_key_revoke(api_key=issued[0])
    assert refusal(ea_token_refresh, refresh_token=tokens.refresh) == (Refusal.REVOKED_KEY, AUTH_REVOKED_KEY)
    assert session_of(tokens).refresh_generation == 0


def test_expired_refresh_token_is_expired_token_and_changes_nothing(tokens):
    forged = RefreshToken()
    for claim, value in {**ea_claims(tokens), "gen": 0}.items():
        forged[claim] = value
    forged.set_exp(from_time=timezone.now() - timedelta(days=31))
    assert refusal(ea_token_refresh, refresh_token=str(forged)) == (Refusal.EXPIRED_TOKEN, TOKEN_EXPIRED)
    assert session_of(tokens).refresh_generation == 0 and session_of(tokens).ended_at is None


def test_forged_or_access_token_as_refresh_is_invalid_token_and_changes_nothing(tokens):
    payload = jwt.decode(tokens.refresh, options={"verify_signature": False})
    forged = jwt.encode(payload, "another-signing-key-" * 3, algorithm=settings.SIMPLE_JWT["ALGORITHM"])
    assert refusal(ea_token_refresh, refresh_token=forged)[0] == Refusal.INVALID_TOKEN
    assert refusal(ea_token_refresh, refresh_token=tokens.access)[0] == Refusal.INVALID_TOKEN
    session = session_of(tokens)
    assert (session.refresh_generation, session.ended_at) == (0, None)


def test_refresh_token_of_an_unknown_session_is_invalid_token(tokens):
    forged = RefreshToken()
    for claim, value in {**ea_claims(tokens), "session_id": str(uuid.uuid4()), "gen": 0}.items():
        forged[claim] = value
    assert refusal(ea_token_refresh, refresh_token=str(forged)) == (Refusal.INVALID_TOKEN, TOKEN_INVALID)


# --- session liveness ----------------------------------------------------------------------------------------------


def test_ended_session_is_no_longer_active_and_cannot_refresh(tokens):
    assert ea_session_active(session_id=tokens.session_id, tenant_id=tokens.tenant_id)

    assert ea_session_end(session_id=tokens.session_id, tenant_id=tokens.tenant_id, reason="logout")
    assert not ea_session_end(session_id=tokens.session_id, tenant_id=tokens.tenant_id, reason="logout")

    assert not ea_session_active(session_id=tokens.session_id, tenant_id=tokens.tenant_id)
    assert session_of(tokens).end_reason == "logout"
    assert refusal(ea_token_refresh, refresh_token=tokens.refresh) == (Refusal.INVALID_TOKEN, SESSION_ENDED)


def test_revoking_the_key_makes_its_live_sessions_inactive(issued, tokens):
    api_key_revoke(api_key=issued[0])
    assert not ea_session_active(session_id=tokens.session_id, tenant_id=tokens.tenant_id)


def test_session_of_another_tenant_cannot_be_ended(tokens):
    assert not ea_session_end(session_id=tokens.session_id, tenant_id=uuid.uuid4(), reason="logout")
    assert ea_session_active(session_id=tokens.session_id, tenant_id=tokens.tenant_id)
