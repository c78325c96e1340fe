"""The REST API's one error shape, from one handler keyed on the exception (suho/api_errors.py): an app's refusal
is an ApiError subclass, DRF's and Django's exceptions map by type, and endpoints that never wrote an envelope of
their own (compliance) answer in it too."""

from __future__ import annotations

from uuid import uuid4

from django.test import Client
from factories import make_tenant, make_user

from compliance.gdpr import CONSENT_NOT_GIVEN
from suho.api_errors import ApiError, api_exception_handler


class Teapot(ApiError):
    code = "teapot"
    http_status = 418
    retry_after_s = 7


def test_an_app_refusal_is_rendered_from_its_exception_class():
    response = api_exception_handler(Teapot("Short and stout."), {})
    assert (response.status_code, response.data) == (418, {"error": {"code": "teapot", "message": "Short and stout."}})
    assert response["Retry-After"] == "7"


def test_an_exception_that_is_no_refusal_propagates():
    assert api_exception_handler(RuntimeError("a bug"), {}) is None


def test_the_compliance_api_answers_in_the_one_shape(committed):
    client = Client()
    client.force_login(make_user(make_tenant()))
    bad = client.post("/api/compliance/consents", {"purpose": ""}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["error"]["message"].startswith("purpose: ")
    missing = client.get(f"/api/compliance/reports/{uuid4()}.json")  # Django's Http404
    assert (missing.status_code, missing.json()) == (404, {"error": {"code": "not_found", "message": "Not found."}})
    never = client.delete("/api/compliance/consents/marketing")
    message = CONSENT_NOT_GIVEN.format(purpose="marketing")
    assert (never.status_code, never.json()) == (404, {"error": {"code": "not_found", "message": message}})


def test_a_401_carries_the_challenge_of_the_endpoints_authenticator(committed):
    user_api = Client().get("/api/accounts/")
    token = Client().post("/api/token/", {"username": "nobody", "password": "not a password"})
    signals = Client().get("/api/signals/")
    assert [r.status_code for r in (user_api, token, signals)] == [401, 401, 401]
    assert {r.json()["error"]["code"] for r in (user_api, token, signals)} == {"not_authenticated"}
    assert user_api["WWW-Authenticate"] == token["WWW-Authenticate"] == 'Bearer realm="api"'
    assert signals["WWW-Authenticate"] == 'Bearer realm="suho-signals"'
