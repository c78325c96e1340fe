"""POST /api/ea/auth and /api/ea/token/refresh: tokens, one error shape, status codes, no CSRF, documented."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from accounts.models import EASession
from accounts.services import (
    AUTH_BAD_KEY,
    AUTH_RATE_LIMITED,
    AUTH_UNKNOWN_ACCOUNT,
    REFRESH_TOKEN_REUSED,
    ea_access_verify,
)
from accounts.throttle import EA_PAIR, EA_SOURCE
from suho.routers import operator_path

AUTH_URL = "/api/ea/auth"
REFRESH_URL = "/api/ea/token/refresh"
TOKEN_FIELDS = {"access", "refresh", "session_id", "access_expires_at", "refresh_expires_at", "tenant_id", "account_id"}


@pytest.fixture
def api(remote_addr):
    client = Client(enforce_csrf_checks=True)  # the EA has no cookies: CSRF must not apply

    def post(url, body, **extra):
        kwargs = {"content_type": "application/json", "REMOTE_ADDR": remote_addr, **extra}
        return client.post(url, body, **kwargs)

    return post


def session_count(account) -> int:
    with operator_path():
        return EASession.objects.filter(account=account).count()


def test_auth_returns_tokens(api, account, issued, remote_addr):
    response = api(AUTH_URL, {"account_id": str(account.pk), "api_key": issued[1]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert (body["tenant_id"], body["account_id"]) == (str(account.tenant_id), str(account.pk))
    assert str(ea_access_verify(token=body["access"]).session_id) == body["session_id"]
    with operator_path():
        assert EASession.objects.get(session_id=body["session_id"]).remote_addr == remote_addr


@pytest.mark.parametrize(
    ("body_of", "code", "message"),
    [
        (lambda account, key: {"account_id": str(account.pk), "api_key": key[:-3] + "xyz"}, "bad_key", AUTH_BAD_KEY),
        (lambda account, key: {"account_id": str(uuid.uuid4()), "api_key": key}, "unknown_account",
         AUTH_UNKNOWN_ACCOUNT),
    ],
)  # fmt: skip
def test_refused_credentials_are_401_with_the_reason_code(api, account, issued, body_of, code, message):
    response = api(AUTH_URL, body_of(account, issued[1]))

    assert response.status_code == 401
    assert response.json() == {"error": {"code": code, "message": message}}
    assert response.headers["WWW-Authenticate"]
    assert session_count(account) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"account_id": "not-a-uuid", "api_key": "suho_ea_x"},
        {"account_id": None, "api_key": "suho_ea_x"},
        {"api_key": "suho_ea_x"},
        {"account_id": "{account}"},
        {"account_id": "{account}", "api_key": "k" * 201},
        {"account_id": "{account}", "api_key": ["a", "list"]},
    ],
)
def test_malformed_input_is_400_and_changes_nothing(api, account, body):
    body = {k: v.format(account=account.pk) if isinstance(v, str) else v for k, v in body.items()}

    response = api(AUTH_URL, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and error["code"] == "invalid_request" and error["message"]
    assert session_count(account) == 0
    with operator_path():
        account.refresh_from_db()
    assert account.last_refusal_reason == ""  # malformed input never reaches authentication


def test_unparsable_body_is_400_in_the_same_shape(api, account):
    response = api(AUTH_URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_rate_limited_is_429_with_retry_after(api, account, issued):
    for _ in range(EA_PAIR.free + 1):
        assert api(AUTH_URL, {"account_id": str(account.pk), "api_key": "wrong"}).status_code == 401

    response = api(AUTH_URL, {"account_id": str(account.pk), "api_key": issued[1]})

    assert response.status_code == 429
    assert response.json() == {"error": {"code": "rate_limited", "message": AUTH_RATE_LIMITED}}
    assert 0 < int(response.headers["Retry-After"]) <= EA_PAIR.max_s
    assert session_count(account) == 0
    assert api(
        AUTH_URL, {"account_id": str(account.pk), "api_key": issued[1]}, REMOTE_ADDR="192.0.2.78"
    ).status_code == (200)  # the genuine EA elsewhere is not locked out


def test_failures_count_against_the_client_address(api, account, issued):
    for _ in range(EA_SOURCE.free + 1):
        api(AUTH_URL, {"account_id": str(uuid.uuid4()), "api_key": "wrong"})
    body = {"account_id": str(account.pk), "api_key": issued[1]}

    assert api(AUTH_URL, body).status_code == 429
    assert api(AUTH_URL, body, REMOTE_ADDR="192.0.2.77").status_code == 200


def test_refresh_returns_a_new_pair_and_a_spent_token_is_refused(api, account, issued):
    first = api(AUTH_URL, {"account_id": str(account.pk), "api_key": issued[1]}).json()

    renewed = api(REFRESH_URL, {"refresh": first["refresh"]})
    assert renewed.status_code == 200, renewed.content
    assert set(renewed.json()) == TOKEN_FIELDS and renewed.json()["session_id"] == first["session_id"]

    reused = api(REFRESH_URL, {"refresh": first["refresh"]})
    assert reused.status_code == 401
    assert reused.json() == {"error": {"code": "invalid_token", "message": REFRESH_TOKEN_REUSED}}


@pytest.mark.parametrize(("body", "status"), [({}, 400), ({"refresh": ""}, 400), ({"refresh": "a.b.c"}, 401)])
def test_refresh_with_malformed_or_invalid_token(api, committed, body, status):
    response = api(REFRESH_URL, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == ("invalid_request" if status == 400 else "invalid_token")


def test_get_is_refused_in_the_same_shape(committed):
    response = Client().get(AUTH_URL)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "invalid_request"


def test_both_endpoints_are_in_the_openapi_schema(committed):
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    for url in (AUTH_URL, REFRESH_URL):
        operation = schema["paths"][url]["post"]
        assert {"200", "400", "401"} <= set(operation["responses"]), url
        assert operation.get("security") in (None, [], [{}])
    assert "429" in schema["paths"][AUTH_URL]["post"]["responses"]
