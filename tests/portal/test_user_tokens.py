"""Traders' API tokens: a refresh token is spent when used, presenting a spent one revokes every token of that
log-in (the thief's fresh one too), and a password change ends access and refresh tokens issued before it."""

from __future__ import annotations

from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User, UserTokenFamily
from accounts.user_tokens import PASSWORD_CHANGED, REFRESH_INVALID, REFRESH_REUSED, REFRESH_REVOKED
from compliance.models import AuditLog
from suho.routers import operator_path
from suho.tenancy import tenant_context
from tests.portal.conftest import PASSWORD


def _obtain(username: str = "alice") -> dict:
    response = APIClient().post("/api/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _refresh(token: str):
    return APIClient().post("/api/token/refresh/", {"refresh": token}, format="json")


def _reads(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/accounts/").status_code


def test_a_refresh_token_rotates_and_its_reuse_revokes_the_whole_log_in(trader):
    first = _obtain()
    second = _refresh(first["refresh"])
    assert second.status_code == 200 and second.json()["refresh"] != first["refresh"]
    assert _reads(second.json()["access"]) == 200

    reused = _refresh(first["refresh"])  # the thief (or the victim) presents the spent token
    assert reused.status_code == 401 and reused.json()["error"]["message"] == REFRESH_REUSED
    after = _refresh(second.json()["refresh"])  # the other holder's fresh token died with the family
    assert after.status_code == 401 and after.json()["error"]["message"] == REFRESH_REVOKED
    with operator_path():
        assert UserTokenFamily.objects.get().revoke_reason == "refresh_reuse"
    with tenant_context(trader.tenant_id):
        assert AuditLog.objects.filter(event_type="user_token_family_revoked", user_id=trader.pk).count() == 1

    assert _refresh(_obtain()["refresh"]).status_code == 200  # a new log-in starts a new family


def test_a_password_change_ends_every_token_issued_before_it(trader):
    tokens = _obtain()
    assert _reads(tokens["access"]) == 200
    with operator_path():
        user = User.objects.get(pk=trader.pk)
        user.set_password("a brand new passphrase 2")
        user.save()
    assert _reads(tokens["access"]) == 401
    refused = _refresh(tokens["refresh"])
    assert refused.status_code == 401 and refused.json()["error"]["message"] == PASSWORD_CHANGED
    fresh = APIClient().post("/api/token/", {"username": "alice", "password": "a brand new passphrase 2"})
    assert fresh.status_code == 200 and _reads(fresh.json()["access"]) == 200


def test_a_refresh_token_from_before_families_or_malformed_is_refused(trader):
    legacy = RefreshToken.for_user(trader)  # as /api/token/ issued them before rotation: valid for 30 days
    for token in (str(legacy), "not-a-token"):
        refused = _refresh(token)
        assert refused.status_code == 401 and refused.json()["error"]["message"] == REFRESH_INVALID
    with operator_path():
        assert not UserTokenFamily.objects.exists()
