"""POST /api/tv/<token>/: a TradingView alert, as a short line or JSON, becomes a signal for the URL's account
through the same validation, adjustment, risk gate and audit; a bad token or alert writes nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from compliance.models import AuditLog
from signals.models import TradingSignal
from signals.services import tradingview_webhook_create, tradingview_webhook_revoke
from signals.webhooks import TV_ALERT_BAD_PAIR, TV_ALERT_SHAPE, tradingview_alert_parse
from suho.routers import operator_path
from tests.signals.conftest import quote_put, reference_put


@pytest.fixture
def hook(account):
    return tradingview_webhook_create(account=account, label="chart")


def _post(token: str, body: str, content_type: str = "text/plain"):
    return Client().post(f"/api/tv/{token}/", body, content_type=content_type)


def _signal_rows() -> int:
    with operator_path():
        return TradingSignal.objects.count()


def test_a_line_alert_becomes_an_adjusted_signal_for_the_urls_account(account, hook, published):
    quote_put(account)
    reference_put()
    response = _post(hook[1], "buy,FX:EURUSD,entry=1.0952,sl=1.0932,tp=1.0982,vol=0.1,valid=300,id=tv-1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source"], body["account_id"], body["client_signal_id"]) == (
        "tradingview", str(account.account_id), "tv-1")  # fmt: skip
    assert (body["entry_price"], body["stop_loss"], body["take_profit"]) == (1.0953, 1.0934, 1.0984)
    assert published.for_account(account.account_id) == [f"mt5.signal.{account.account_id}.{body['signal_id']}"]
    with operator_path():
        audit = AuditLog.objects.get(event_type="signal_created", metadata__signal_id=body["signal_id"])
    assert audit.metadata["actor"] == f"tradingview:{hook[0].id}"
    assert _post(hook[1], "buy,EURUSD,sl=1.0932,vol=0.1,id=tv-1").status_code == 200  # idempotent on id
    assert _signal_rows() == 1


def test_a_json_alert_without_an_entry_trades_at_the_broker_price(account, hook):
    quote_put(account)
    body = '{"action": "sell", "symbol": "EURUSD", "sl": 1.0990, "tp": 1.0900, "volume": 0.2}'
    response = _post(hook[1], body, "application/json")
    assert response.status_code == 201, response.json()
    signal = response.json()
    assert (signal["action"], signal["entry_price"], signal["volume"]) == ("SELL", 1.0951, 0.2)
    assert (signal["stop_loss"], signal["take_profit"], signal["price_deviation"]) == (1.099, 1.09, 0.0)


@pytest.mark.parametrize("token", ["tv_unknown", "nonsense", "x" * 300])
def test_an_unknown_token_is_404_writes_nothing_and_is_not_logged(account, hook, token, caplog):
    quote_put(account)
    response = _post(token, "buy,EURUSD,vol=0.1")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert _signal_rows() == 0
    assert token not in caplog.text  # the path is the secret


def test_a_revoked_token_is_404(account, hook):
    quote_put(account)
    tradingview_webhook_revoke(webhook=hook[0])
    assert _post(hook[1], "buy,EURUSD,vol=0.1").status_code == 404
    assert _signal_rows() == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("buy", 400, "invalid_alert"),
        ("buy,EURUSD,sl", 400, "invalid_alert"),
        ("buy,EURUSD,colour=red,vol=0.1", 400, "invalid_alert"),
        ("{broken", 400, "invalid_alert"),
        ("buy,EURUSD", 400, "invalid_request"),  # no volume
        ("hold,EURUSD,vol=0.1", 422, "invalid_action"),
        ("buy,EURUSD,sl=1.0990,vol=0.1", 422, "stop_loss_wrong_side"),
        ("buy,EURUSD,vol=0.1,valid=-5", 422, "expired"),
    ],
)
def test_a_bad_alert_is_refused_with_its_reason_and_writes_nothing(account, hook, body, status, code):
    quote_put(account)
    response = _post(hook[1], body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert _signal_rows() == 0


def test_the_line_parser():
    now = timezone.now()
    parsed = tradingview_alert_parse(b"Short, OANDA:GBPUSD, SL=1.28, tp=1.26, qty=0.3, conf=0.7", now=now)
    assert parsed == {"action": "SELL", "symbol": "GBPUSD", "stop_loss": "1.28", "take_profit": "1.26",
                      "volume": "0.3", "confidence_score": "0.7"}  # fmt: skip
    assert tradingview_alert_parse(b"buy,EURUSD,valid=60", now=now)["valid_until"] == (
        now + timezone.timedelta(seconds=60)).isoformat()  # fmt: skip
    with pytest.raises(ValueError) as refused:
        tradingview_alert_parse(b"buy", now=now)
    assert refused.value.message == TV_ALERT_SHAPE.format(text="buy")
    with pytest.raises(ValueError) as refused:
        tradingview_alert_parse(b"buy,EURUSD,sl", now=now)
    assert refused.value.message == TV_ALERT_BAD_PAIR.format(part="sl")
