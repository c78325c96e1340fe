"""The TradingView webhook's URL is its credential: a real daphne serving real requests to it (accepted, refused,
unrouted) writes no token to its access log or its error lines, nor a legacy EA's `api_key` from a query string."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from signals.services import tradingview_webhook_create
from suho.logging import REDACTED
from tests.gateway.ea_client import server_env
from tests.servers import daphne_serving


def _request(url: str, body: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_daphne_logs_no_webhook_token_and_no_query_string_key(account, tmp_path):
    _, token = tradingview_webhook_create(account=account, label="chart")
    ea_key = "suho_ea_0123456789ab_" + "s" * 43
    log_path = tmp_path / "daphne.log"
    env = server_env(DEBUG="0", SECURE_SSL_REDIRECT="0", PYTHONUNBUFFERED="1", LOG_LEVEL="INFO")
    with daphne_serving(env, log_path) as port:
        base = f"http://127.0.0.1:{port}"
        statuses = [
            _request(f"{base}/api/tv/{token}/", b"buy,EURUSD,not-a-field"),  # refused alert (4xx from the view)
            _request(f"{base}/api/tv/{token}/no-such-route", b"x"),  # django.request logs "Not Found: <path>"
            _request(f"{base}/ws/ea/?account_id={account.pk}&api_key={ea_key}"),  # plain HTTP to the socket URL
        ]
    log = log_path.read_text()
    assert all(400 <= status < 500 for status in statuses), statuses
    assert token not in log and token[8:] not in log and ea_key not in log
    access = [line for line in log.splitlines() if '"POST /api/tv/' in line]
    assert access and all(f"/api/tv/{REDACTED}/" in line for line in access), log[-3000:]
    errors = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(entry["message"] == f"Not Found: /api/tv/{REDACTED}/no-such-route" for entry in errors), log[-3000:]
