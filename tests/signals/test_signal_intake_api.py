"""POST/GET /api/signals/: the seed's JSON in, precise 4xx for bad input with nothing written, idempotency,
broadcast, tenant isolation and credentials."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compliance.models import AuditLog
from signals.models import TradingSignal
from signals.services import intake
from suho.routers import operator_path
from tests.accounts.helpers import account_make, tenant_make
from tests.signals.conftest import ApiClient, quote_put, reference_put, seed_json


def _rows() -> tuple[int, int]:
    with operator_path():
        return TradingSignal.objects.count(), AuditLog.objects.filter(event_category="signal").count()


def test_a_seed_json_signal_is_adjusted_to_the_broker_quote_and_recorded_pending(api, account, published):
    quote_put(account)
    reference_put()
    response = api.post("/api/signals/", seed_json(account.account_id))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert (body["entry_price"], body["entry_price_range"]) == (1.0953, {"min": 1.0951, "max": 1.0955})
    assert (body["stop_loss"], body["take_profit"]) == (1.0934, 1.0984)
    assert (body["price_deviation"], body["deviation_pips"]) == (0.0002, 2.0)
    assert (body["polygon_ask"], body["broker_ask"], body["original_entry_price"]) == (1.0951, 1.0953, 1.0952)
    assert body["metadata"] == {"polygon_ask": 1.0951, "broker_ask": 1.0953, "broker_bid": 1.0951,
                                "deviation_pips": 2.0, "reference_source": "reference_feed",
                                "reference_price": "1.09510000"}  # fmt: skip
    assert published.for_account(account.account_id) == [f"mt5.signal.{account.account_id}.{body['signal_id']}"]


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"action": "HOLD"}, "invalid_action", intake.SIGNAL_INVALID_ACTION.format(action="HOLD")),
        ({"symbol": "NOPE42"}, "unknown_symbol", intake.SIGNAL_UNKNOWN_SYMBOL.format(symbol="NOPE42")),
        (
            {"stop_loss": 1.0960},
            "stop_loss_wrong_side",
            intake.SIGNAL_STOP_LOSS_WRONG_SIDE.format(
                action="BUY", side="below", entry=Decimal("1.0952"), stop_loss=Decimal("1.096")
            ),
        ),
        (
            {"action": "SELL", "stop_loss": 1.0932, "take_profit": 1.0900},
            "stop_loss_wrong_side",
            intake.SIGNAL_STOP_LOSS_WRONG_SIDE.format(
                action="SELL", side="above", entry=Decimal("1.0952"), stop_loss=Decimal("1.0932")
            ),
        ),
        (
            {"take_profit": 1.0940},
            "take_profit_wrong_side",
            intake.SIGNAL_TAKE_PROFIT_WRONG_SIDE.format(
                action="BUY", side="above", entry=Decimal("1.0952"), take_profit=Decimal("1.094")
            ),
        ),
        ({"volume": 0}, "volume_out_of_range", intake.SIGNAL_VOLUME_OUT_OF_RANGE.format(limit=100, volume=0)),
        ({"volume": 101}, "volume_out_of_range", intake.SIGNAL_VOLUME_OUT_OF_RANGE.format(limit=100, volume=101)),
        ({"confidence_score": 1.2}, "confidence_out_of_range",
         intake.SIGNAL_CONFIDENCE_OUT_OF_RANGE.format(confidence=Decimal("1.2"))),
        ({"entry_price": -1}, "invalid_price", intake.SIGNAL_PRICE_NOT_POSITIVE.format(name="entry_price", value=-1)),
    ],
)  # fmt: skip
def test_a_bad_signal_is_refused_with_its_rule_and_nothing_is_written(api, account, overrides, code, message):
    quote_put(account)
    before = _rows()
    response = api.post("/api/signals/", seed_json(account.account_id, **overrides))
    assert response.status_code == 422
    assert response.json() == {"error": {"code": code, "message": message}}
    assert _rows() == before


def test_an_expired_signal_is_refused(api, account):
    valid_until = timezone.now() - timedelta(seconds=1)
    response = api.post("/api/signals/", seed_json(account.account_id, valid_until=valid_until.isoformat()))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "expired"
    assert _rows() == (0, 0)


def test_an_unknown_account_and_another_tenants_account_are_the_same_422(api, account):
    other = account_make(tenant_make())
    for account_id in ("6f1c0b7e-3f4a-4d7e-9a51-2b8f0c7d9e10", str(other.account_id), "not-a-uuid"):
        response = api.post("/api/signals/", seed_json(account_id))
        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "unknown_account",
            "message": intake.SIGNAL_UNKNOWN_ACCOUNT.format(account_id=account_id),
        }
    assert _rows() == (0, 0)


def test_malformed_json_is_400_invalid_request_and_writes_nothing(api, account):
    response = api.client.post("/api/signals/", "{not json", content_type="application/json", **api.headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    response = api.post("/api/signals/", {"account_id": str(account.account_id), "symbol": "EURUSD"})
    assert response.status_code == 400
    assert "volume" in response.json()["error"]["message"]
    assert _rows() == (0, 0)


def test_the_same_producer_id_twice_returns_the_first_signal_and_writes_nothing(api, account, published):
    quote_put(account)
    body = seed_json(account.account_id)
    first = api.post("/api/signals/", body)
    rows = _rows()
    second = api.post("/api/signals/", {**body, "volume": 0.2})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["signal_id"] == first.json()["signal_id"]
    assert second.json()["volume"] == 0.1
    assert _rows() == rows
    assert len(published.for_account(account.account_id)) == 1


def test_a_repeat_after_the_price_passed_its_stop_loss_answers_with_the_recorded_signal(api, account, published):
    quote_put(account)
    reference_put()
    body = seed_json(account.account_id, entry_price=None)  # a market signal: its entry is the broker's price
    del body["entry_price_range"]
    first = api.post("/api/signals/", body)
    assert first.status_code == 201, first.json()
    quote_put(account, bid=Decimal("1.0918"), ask=Decimal("1.0920"))  # the market falls through the stop loss
    reference_put(bid=Decimal("1.0918"), ask=Decimal("1.0920"))
    rows = _rows()

    new = api.post("/api/signals/", {**body, "signal_id": f"{body['signal_id']}-new"})
    again = api.post("/api/signals/", body)

    assert new.status_code == 422 and new.json()["error"]["code"] == "stop_loss_wrong_side"
    assert again.status_code == 200, again.json()
    assert again.json()["signal_id"] == first.json()["signal_id"]
    assert _rows() == rows
    assert len(published.for_account(account.account_id)) == 1


def test_a_broadcast_makes_one_signal_per_eligible_account_each_on_its_own_quote(api, tenant, account, published):
    second = account_make(tenant)
    account_make(tenant, trading_enabled=False)  # not eligible: no row
    quote_put(account)
    quote_put(second, bid=Decimal("1.0948"), ask=Decimal("1.0950"))
    reference_put()
    body = seed_json("broadcast")
    response = api.post("/api/signals/", body)
    assert response.status_code == 201, response.json()
    signals = {s["account_id"]: s for s in response.json()["signals"]}
    assert set(signals) == {str(account.account_id), str(second.account_id)}
    assert {s["broadcast_id"] for s in signals.values()} == {response.json()["broadcast_id"]}
    assert (signals[str(account.account_id)]["entry_price"], signals[str(account.account_id)]["stop_loss"]) == (
        1.0953, 1.0934)  # fmt: skip
    assert (signals[str(second.account_id)]["entry_price"], signals[str(second.account_id)]["stop_loss"]) == (
        1.095, 1.0931)  # fmt: skip
    again = api.post("/api/signals/", body)
    assert again.status_code == 200
    assert {s["signal_id"] for s in again.json()["signals"]} == {s["signal_id"] for s in signals.values()}
    assert len(published.for_account(account.account_id)) == len(published.for_account(second.account_id)) == 1


def test_list_and_detail_are_tenant_scoped_and_another_tenants_id_is_404(api, account):
    quote_put(account)
    mine = api.post("/api/signals/", seed_json(account.account_id)).json()
    api.post("/api/signals/", seed_json(account.account_id, symbol="GBPUSD"))  # no quote: recorded, rejected
    other_tenant = tenant_make()
    other_account = account_make(other_tenant)
    quote_put(other_account)
    from signals.services import ml_engine_key_create

    other_api = ApiClient(ml_engine_key_create(tenant_id=other_tenant.id)[1])
    theirs = other_api.post("/api/signals/", seed_json(other_account.account_id)).json()

    listed = api.get("/api/signals/").json()
    assert listed["count"] == 2
    assert theirs["signal_id"] not in {s["signal_id"] for s in listed["results"]}
    assert [s["symbol"] for s in api.get("/api/signals/", {"status": "rejected"}).json()["results"]] == ["GBPUSD"]
    assert api.get("/api/signals/", {"symbol": "EURUSD"}).json()["count"] == 1
    assert api.get("/api/signals/", {"status": "bogus"}).status_code == 400
    assert api.get(f"/api/signals/{mine['signal_id']}/").json()["signal_id"] == mine["signal_id"]
    for path in (f"/api/signals/{theirs['signal_id']}/", f"/api/signals/{theirs['signal_id']}/cancel/"):
        response = api.get(path) if path.endswith("/") and "cancel" not in path else api.post(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert other_api.get(f"/api/signals/{theirs['signal_id']}/").json()["status"] == "pending"


def test_without_a_valid_key_the_api_is_401_and_writes_nothing(account):
    for client in (ApiClient(None), ApiClient("suho_ml_wrong")):
        assert client.post("/api/signals/", seed_json(account.account_id)).status_code == 401
        response = client.get("/api/signals/")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert _rows() == (0, 0)
