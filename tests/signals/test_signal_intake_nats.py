"""Signals over NATS (`ml.signals`, request-reply): the same intake as REST, authenticated by the ML-engine key."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from signals.intake_nats import NOT_AUTHENTICATED, SUBJECT, signal_intake_serve
from signals.models import TradingSignal
from signals.services.intake import SIGNAL_INVALID_ACTION
from suho.routers import operator_path
from tests.signals.conftest import quote_put, seed_json


@pytest.fixture
async def intake():
    """A running intake server and a client connection to send requests with."""
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(signal_intake_serve(stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    client = await nats.connect(settings.NATS_URL)
    yield client
    await client.close()
    stop.set()
    await asyncio.wait_for(server, 5)


async def _request(client, body, key: str | None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    reply = await client.request(SUBJECT, json.dumps(body).encode(), headers=headers, timeout=5)
    return json.loads(reply.data)


def _count() -> int:
    with operator_path():
        return TradingSignal.objects.count()


async def test_a_seed_json_request_is_adjusted_recorded_and_answered(intake, account, ml_key):
    await database_sync_to_async(quote_put)(account)
    body = seed_json(account.account_id)
    reply = await _request(intake, body, ml_key)
    assert reply["created"] is True
    [signal] = reply["signals"]
    assert (signal["status"], signal["entry_price"], signal["stop_loss"], signal["source"]) == (
        "pending", 1.0953, 1.0934, "ml")  # fmt: skip
    again = await _request(intake, body, ml_key)
    assert (again["created"], again["signals"][0]["signal_id"]) == (False, signal["signal_id"])
    assert await database_sync_to_async(_count)() == 1


async def test_without_a_key_or_with_a_bad_request_nothing_is_written(intake, account, ml_key):
    await database_sync_to_async(quote_put)(account)
    assert await _request(intake, seed_json(account.account_id), None) == {
        "error": {"code": "not_authenticated", "message": NOT_AUTHENTICATED}}  # fmt: skip
    assert (await _request(intake, seed_json(account.account_id), "suho_ml_nope"))["error"]["code"] == (
        "not_authenticated")  # fmt: skip
    assert (await _request(intake, [1, 2], ml_key))["error"]["code"] == "invalid_request"
    assert await _request(intake, seed_json(account.account_id, action="HOLD"), ml_key) == {
        "error": {"code": "invalid_action", "message": SIGNAL_INVALID_ACTION.format(action="HOLD")}}  # fmt: skip
    assert await database_sync_to_async(_count)() == 0
