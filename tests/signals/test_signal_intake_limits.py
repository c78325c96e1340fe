"""Extreme input to signal intake is a 4xx in the API's error format and writes nothing (issue 15, finding 12): the
inputs that answered 500 through daphne — a price of 1e30, `\\u0000` in `metadata`, JSON nested 5,000 deep,
`?limit=99999999999999999999` — and the edge limits around them (suho/edge.py), on REST, NATS and the TradingView
webhook alike."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import nats
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from compliance.models import AuditLog
from signals.intake_nats import SUBJECT, signal_intake_serve
from signals.models import TradingSignal
from signals.services import intake, tradingview_webhook_create
from signals.webhooks import TV_ALERT_BAD_JSON
from suho import edge
from suho.routers import operator_path
from tests.gateway.conftest import server_url  # noqa: F401  (a session fixture: daphne serving suho.asgi)
from tests.servers import http, http_base
from tests.signals.conftest import quote_put, reference_put, seed_json

DEEP = 5_000


def _rows() -> tuple[int, int]:
    with operator_path():
        return TradingSignal.objects.count(), AuditLog.objects.filter(event_category="signal").count()


def _nested(depth: int, inner=1):
    """A JSON value `depth` levels deep (a list holds a list … holds `inner`)."""
    return "[" * depth + json.dumps(inner) + "]" * depth


@pytest.fixture
def post(server_url, ml_key):  # noqa: F811
    """POST a body (bytes, or an object sent as JSON) to daphne's /api/signals/ with the tenant's key."""

    def send(body, path="/api/signals/"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {ml_key}", "Content-Type": "application/json"}
        status, _headers, answer = http(http_base(server_url) + path, method="POST", body=raw, headers=headers)
        return status, answer

    return send


@pytest.fixture
def get(server_url, ml_key):  # noqa: F811
    def send(path):
        status, _headers, answer = http(http_base(server_url) + path, headers={"Authorization": f"Bearer {ml_key}"})
        return status, answer

    return send


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"stop_loss": 1e30, "action": "SELL", "take_profit": 1.0900}, "stop_loss"),
        ({"entry_price": 1e30}, "entry_price"),
        ({"take_profit": 1e30}, "take_profit"),
    ],
)
def test_a_price_of_1e30_is_422_invalid_price_and_writes_nothing(post, account, overrides, name):
    quote_put(account)
    reference_put()
    before = _rows()
    status, body = post(seed_json(account.account_id, **overrides))
    assert status == 422, body
    message = intake.SIGNAL_PRICE_TOO_LARGE.format(name=name, limit=intake.MAX_PRICE, value=Decimal("1E+30"))
    assert json.loads(body) == {"error": {"code": "invalid_price", "message": message}}
    assert _rows() == before


def test_a_price_just_below_the_limit_passes_the_price_rule(api, account):
    quote_put(account)
    below = float(intake.MAX_PRICE - 1)
    response = api.post("/api/signals/", seed_json(account.account_id, take_profit=below))
    assert response.status_code == 201, response.json()
    assert Decimal(str(response.json()["original_take_profit"])) == Decimal(str(below))


@pytest.mark.parametrize("metadata", [{"note": "a\u0000b"}, {"a\u0000": 1}, {"deep": [["x\u0000"]]}])
def test_metadata_with_a_nul_character_is_400_and_writes_nothing(post, account, metadata):
    quote_put(account)
    before = _rows()
    status, body = post(seed_json(account.account_id, metadata=metadata))
    assert status == 400, body
    message = edge.JSON_INVALID.format(error=edge.JSON_NUL)
    assert json.loads(body) == {"error": {"code": "invalid_request", "message": message}}
    assert _rows() == before


def test_json_nested_5000_deep_is_400_and_writes_nothing(post, account):
    before = _rows()
    status, body = post(f'{{"metadata": {_nested(DEEP)}}}'.encode())
    assert status == 400, body
    message = edge.JSON_INVALID.format(error=edge.JSON_TOO_DEEP.format(limit=edge.JSON_MAX_DEPTH))
    assert json.loads(body) == {"error": {"code": "invalid_request", "message": message}}
    assert _rows() == before


def test_json_at_the_depth_limit_is_accepted_and_one_level_more_is_refused(api, account):
    """The document is level 1, `metadata` level 2: metadata holding lists `JSON_MAX_DEPTH - 2` deep is the limit."""
    quote_put(account)
    limit = edge.JSON_MAX_DEPTH

    def send(depth: int):
        metadata = {"x": json.loads(_nested(depth))}
        return api.post("/api/signals/", seed_json(account.account_id, metadata=metadata))

    assert send(limit - 2).status_code == 201
    refused = send(limit - 1)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == edge.JSON_INVALID.format(error=edge.JSON_TOO_DEEP.format(limit=limit))


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("limit=99999999999999999999", "limit", edge.PAGE_LIMIT_INVALID),
        ("limit=1001", "limit", edge.PAGE_LIMIT_INVALID),
        ("limit=0", "limit", edge.PAGE_LIMIT_INVALID),
        ("limit=ten", "limit", edge.PAGE_LIMIT_INVALID),
        ("offset=99999999999999999999", "offset", edge.PAGE_OFFSET_INVALID),
        ("offset=-1", "offset", edge.PAGE_OFFSET_INVALID),
    ],
)
def test_a_limit_or_offset_out_of_bounds_is_400_naming_it(get, account, query, param, message):
    status, body = get(f"/api/signals/?{query}")
    assert status == 400, body
    limit = edge.PAGE_MAX_LIMIT if param == "limit" else edge.PAGE_MAX_OFFSET
    expected = f"{param}: {message.format(limit=limit)}"
    assert json.loads(body) == {"error": {"code": "invalid_request", "message": expected}}


def test_the_largest_limit_and_an_offset_are_answered(api, account):
    response = api.get("/api/signals/", {"limit": edge.PAGE_MAX_LIMIT, "offset": 5})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_valid_until_beyond_2999_is_400(api, account):
    quote_put(account)
    before = _rows()
    response = api.post("/api/signals/", seed_json(account.account_id, valid_until="9999-12-31T23:59:59Z"))
    assert response.status_code == 400
    message = edge.DATE_OUT_OF_RANGE.format(min=edge.DATE_MIN, max=edge.DATE_MAX)
    assert response.json() == {"error": {"code": "invalid_request", "message": f"valid_until: {message}"}}
    assert _rows() == before


def test_the_tradingview_webhook_refuses_deep_and_nul_json_with_its_reason(account):
    _hook, token = tradingview_webhook_create(account=account)
    before = _rows()
    deep = '{"x": ' + _nested(1_500) + "}"  # within the webhook's 4,096 bytes
    for body, error in [(deep, edge.JSON_TOO_DEEP.format(limit=edge.JSON_MAX_DEPTH)),
                        ('{"action": "buy", "symbol": "EUR\\u0000USD"}', edge.JSON_NUL)]:  # fmt: skip
        response = Client().post(f"/api/tv/{token}/", body, content_type="text/plain")
        assert response.status_code == 400
        assert response.json() == {"error": {"code": "invalid_alert",
                                             "message": TV_ALERT_BAD_JSON.format(error=error)}}  # fmt: skip
    assert _rows() == before


async def test_nats_intake_answers_deep_or_nul_json_with_invalid_request(account, ml_key):
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(signal_intake_serve(stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    client = await nats.connect(settings.NATS_URL)
    before = await database_sync_to_async(_rows)()
    try:
        for body, message in [
            (_nested(DEEP), edge.JSON_TOO_DEEP.format(limit=edge.JSON_MAX_DEPTH)),
            (json.dumps(seed_json(account.account_id, metadata={"a": "\u0000"})), edge.JSON_NUL),
        ]:
            reply = await client.request(SUBJECT, body.encode(), headers={"Authorization": f"Bearer {ml_key}"},
                                         timeout=5)  # fmt: skip
            assert json.loads(reply.data) == {"error": {"code": "invalid_request", "message": message}}
        assert await database_sync_to_async(_rows)() == before
    finally:
        await client.close()
        stop.set()
        await asyncio.wait_for(server, 5)
