"""TradingView alert text → the seed's signal JSON: `buy,EURUSD,sl=1.0932,tp=1.0982,vol=0.1,valid=300` or JSON.

Pure parsing; the result goes through the same serializer, validation, adjustment and risk gate as an ML signal.
Keys of the line form (and extra keys of the JSON form): sl, tp, vol|volume|qty|lots, entry|price, valid (seconds
from now), id (the alert's own id: idempotency), conf|confidence, strategy, model. `FX:EURUSD` loses its exchange.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from suho.api_errors import ApiError
from suho.edge import json_loads

MAX_ALERT_BYTES = 4096
TV_ALERT_EMPTY = "The alert is empty; send `action,symbol,key=value…` or JSON."
TV_ALERT_TOO_LARGE = f"The alert is larger than {MAX_ALERT_BYTES} bytes."
TV_ALERT_BAD_JSON = "The alert looks like JSON but does not parse: {error}."
TV_ALERT_SHAPE = "The alert needs at least `action,symbol`, got {text!r}."
TV_ALERT_BAD_PAIR = "Expected key=value after action and symbol, got {part!r}."
TV_ALERT_UNKNOWN_KEY = "Unknown alert key {key!r}; known: {known}."
TV_ALERT_BAD_VALID = "valid is a number of seconds, got {value!r}."

KEYS = {
    "sl": "stop_loss", "stop_loss": "stop_loss", "tp": "take_profit", "take_profit": "take_profit",
    "vol": "volume", "volume": "volume", "qty": "volume", "lots": "volume", "entry": "entry_price",
    "price": "entry_price", "entry_price": "entry_price", "valid": "valid", "id": "signal_id",
    "signal_id": "signal_id", "conf": "confidence_score", "confidence": "confidence_score",
    "confidence_score": "confidence_score", "strategy": "strategy_name", "model": "model_version",
    "valid_until": "valid_until",
}  # fmt: skip
ACTIONS = {"buy": "BUY", "long": "BUY", "sell": "SELL", "short": "SELL"}


class TradingViewAlertError(ApiError, ValueError):
    code = "invalid_alert"


def tradingview_alert_parse(body: bytes, *, now: datetime) -> dict:
    """The alert as a dict in the seed JSON's shape (no `account_id`: the webhook's URL names the account)."""
    if len(body) > MAX_ALERT_BYTES:
        raise TradingViewAlertError(TV_ALERT_TOO_LARGE)
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise TradingViewAlertError(TV_ALERT_EMPTY)
    if text.startswith("{"):
        try:
            raw = json_loads(text)
        except ValueError as exc:
            raise TradingViewAlertError(TV_ALERT_BAD_JSON.format(error=exc)) from exc
        if not isinstance(raw, dict):
            raise TradingViewAlertError(TV_ALERT_SHAPE.format(text=text[:80]))
        fields = {KEYS.get(key, key): value for key, value in raw.items()}
    else:
        parts = [part.strip() for part in text.split(",")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise TradingViewAlertError(TV_ALERT_SHAPE.format(text=text[:80]))
        fields = {"action": parts[0], "symbol": parts[1]}
        for part in parts[2:]:
            key, sep, value = part.partition("=")
            if not sep:
                raise TradingViewAlertError(TV_ALERT_BAD_PAIR.format(part=part[:40]))
            name = KEYS.get(key.strip().lower())
            if name is None:
                raise TradingViewAlertError(TV_ALERT_UNKNOWN_KEY.format(key=key[:20], known=", ".join(sorted(KEYS))))
            fields[name] = value.strip()
    fields.pop("account_id", None)
    if isinstance(fields.get("action"), str):
        fields["action"] = ACTIONS.get(fields["action"].strip().lower(), fields["action"])
    if isinstance(fields.get("symbol"), str):
        fields["symbol"] = fields["symbol"].rpartition(":")[2].strip()
    if "valid" in fields:
        value = fields.pop("valid")
        try:
            fields["valid_until"] = (now + timedelta(seconds=float(value))).isoformat()
        except (TypeError, ValueError, OverflowError) as exc:
            raise TradingViewAlertError(TV_ALERT_BAD_VALID.format(value=str(value)[:20])) from exc
    return fields
