"""The traders' REST API: JWT and session auth, tenant scope (another tenant's id is 404), filters, pages, one
error format; and the OpenAPI schema covering every endpoint validates."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create, ea_authenticate
from accounts.user_api import EA_TOKEN_REFUSED
from suho.tenancy import tenant_context
from tests.factories import make_balance, make_order, make_risk_event, make_rollup
from tests.portal.conftest import PASSWORD, trader_make
from trading.user_api import RANGE_INVALID


def jwt_client(username: str) -> APIClient:
    client = APIClient()
    tokens = client.post("/api/token/", {"username": username, "password": PASSWORD}, format="json").json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client


def test_jwt_lists_creates_and_reads_own_accounts(trader):
    client = jwt_client("alice")
    created = client.post("/api/accounts/", {"name": "API made", "account_type": "live"}, format="json")
    assert created.status_code == 201 and created.json()["online"] is False
    listed = client.get("/api/accounts/").json()
    assert [a["name"] for a in listed["results"]] == ["API made"]
    detail = client.get(f"/api/accounts/{created.json()['account_id']}/")
    assert detail.status_code == 200 and detail.json()["account_type"] == "live"


def test_balances_raw_and_rolled_up_trades_filtered_and_risk_events(account):
    now = timezone.now()
    with tenant_context(account.tenant_id):
        for minutes in (30, 20, 10):
            make_balance(account, time=now - timedelta(minutes=minutes))
        make_rollup(account, bucket=now - timedelta(minutes=30))
        make_order(account, symbol="EURUSD", ticket=1)
        make_order(account, symbol="XAUUSD", ticket=2)
        make_risk_event(account)
    client = APIClient()
    client.force_authenticate(account.user)
    base = f"/api/accounts/{account.account_id}"
    raw = client.get(f"{base}/balances/?resolution=raw&limit=2").json()
    assert raw["count"] == 3 and len(raw["results"]) == 2 and raw["next"]
    assert client.get(f"{base}/balances/").json()["count"] == 1
    trades = client.get(f"{base}/trades/?symbol=XAUUSD").json()
    assert [t["ticket"] for t in trades["results"]] == [2]
    assert client.get(f"{base}/risk-events/").json()["count"] == 1
    bad = client.get(f"{base}/balances/", {"start": now.isoformat(), "end": (now - timedelta(hours=1)).isoformat()})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert RANGE_INVALID in bad.json()["error"]["message"]


API_PATHS = ["/api/accounts/{a}/", "/api/accounts/{a}/balances/", "/api/accounts/{a}/trades/",
             "/api/accounts/{a}/risk-events/", "/api/executions/?account_id={a}"]  # fmt: skip


@pytest.mark.parametrize("path", API_PATHS)
def test_another_tenants_account_id_is_404_in_the_error_format(account, path):
    mallory = trader_make("Mallory")
    client = jwt_client(mallory.username)
    response = client.get(path.format(a=account.account_id))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_signals_api_hides_another_tenants_signal(account):
    from tests.factories import make_signal

    with tenant_context(account.tenant_id):
        signal = make_signal(account)
    client = jwt_client(trader_make("Mallory").username)
    assert client.get(f"/api/signals/{signal.signal_id}/").status_code == 404
    assert client.post(f"/api/signals/{signal.signal_id}/cancel/").status_code == 404


def test_unauthenticated_is_401_and_an_ea_refresh_token_is_refused(account):
    assert APIClient().get("/api/accounts/").status_code == 401
    _, key = api_key_create(account=account)
    tokens = ea_authenticate(account_id=account.account_id, api_key=key)
    refused = APIClient().post("/api/token/refresh/", {"refresh": tokens.refresh}, format="json")
    assert refused.status_code == 400 and EA_TOKEN_REFUSED in refused.json()["error"]["message"]
    ea_bearer = APIClient()
    ea_bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.access}")
    assert ea_bearer.get("/api/accounts/").status_code == 401


def test_openapi_schema_validates_and_covers_every_api_route(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    try:
        from openapi_spec_validator import validate
    except ImportError:
        pass
    else:
        validate(schema)
    paths = set(schema["paths"])
    for path in ("/api/accounts/", "/api/accounts/{account_id}/balances/", "/api/accounts/{account_id}/trades/",
                 "/api/executions/", "/api/feedback/", "/api/ea/auth", "/api/signals/", "/api/token/"):  # fmt: skip
        assert path in paths, path


def test_mt5_account_create_via_api_needs_a_name(trader):
    response = jwt_client("alice").post("/api/accounts/", {}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
