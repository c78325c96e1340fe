"""Signal test fixtures: committed tenants, accounts, quotes and producer credentials, truncated by the owner.

Intake reads through the service role and looks credentials up through the operator role (separate connections),
so rows must be committed; pytest-django's own flush would run as the service role, which may not TRUNCATE.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import MT5Account, Tenant
from quotes.models import BrokerQuote, ReferenceQuote
from signals.services import ml_engine_key_create
from suho.bus import get_bus
from suho.cache import cache_client, quote_key
from suho.tenancy import tenant_context
from tests.accounts.helpers import account_make, tenant_make

# Seed §6.3's worked example.
REFERENCE_BID, REFERENCE_ASK = Decimal("1.0949"), Decimal("1.0951")
BROKER_BID, BROKER_ASK = Decimal("1.0951"), Decimal("1.0953")


@pytest.fixture
def tenant(committed) -> Tenant:
    return tenant_make()


@pytest.fixture
def account(tenant) -> MT5Account:
    return account_make(tenant)


@pytest.fixture
def ml_key(tenant) -> str:
    return ml_engine_key_create(tenant_id=tenant.id, label="lstm")[1]


@pytest.fixture
def api(ml_key):
    """A JSON client for /api/signals/ holding the tenant's ML-engine key."""
    return ApiClient(ml_key)


class ApiClient:
    def __init__(self, key: str | None):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}

    def post(self, path: str, body=None):
        return self.client.post(path, body or {}, content_type="application/json", **self.headers)

    def get(self, path: str, params=None):
        return self.client.get(path, params or {}, **self.headers)


def quote_put(account: MT5Account, *, symbol="EURUSD", bid=BROKER_BID, ask=BROKER_ASK, spread=20,
              at: datetime | None = None) -> None:  # fmt: skip
    """A broker quote in the database (the cache entry, if any, removed so the database answers)."""
    with tenant_context(account.tenant_id):
        BrokerQuote.objects.create(
            time=at or timezone.now(), tenant_id=account.tenant_id, account=account, symbol=symbol, bid=bid, ask=ask,
            spread=spread,
        )  # fmt: skip
    cache_client().delete(quote_key(account.account_id, symbol))


def reference_put(*, symbol="EURUSD", bid=REFERENCE_BID, ask=REFERENCE_ASK) -> None:
    ReferenceQuote.objects.create(time=timezone.now(), symbol=symbol, bid=bid, ask=ask, source="test")


def seed_json(account_id, **overrides) -> dict:
    """Seed §5.2's JSON as the ML engine sends it (entry on the reference feed, the §6.3 example's prices)."""
    return {
        "signal_id": f"ml-{time.time_ns()}",
        "account_id": str(account_id),
        "symbol": "EURUSD",
        "action": "BUY",
        "entry_price": 1.0952,
        "entry_price_range": {"min": 1.0950, "max": 1.0954},
        "stop_loss": 1.0932,
        "take_profit": 1.0982,
        "volume": 0.10,
        "model_version": "lstm_v2.3",
        "confidence_score": 0.87,
        "valid_until": (timezone.now() + timezone.timedelta(minutes=5)).isoformat(),
        "metadata": {"polygon_ask": 1.0951, "broker_ask": 1.0953, "deviation_pips": 2},
        **overrides,
    }


class Published:
    """Everything published on `mt5.signal.>` while the fixture lives (what the EA gateway would deliver)."""

    def __init__(self):
        self.subjects: list[str] = []
        self.bus = get_bus()
        self.subscription = self.bus.subscribe("mt5.signal.>", lambda subject, data: self.subjects.append(subject))
        self.subscription.result(timeout=5)

    def for_account(self, account_id) -> list[str]:
        """Subjects for `account_id` published so far: a sentinel published after them on the same connection
        arrives after them (NATS keeps one publisher's order), so once it is here nothing earlier is missing."""
        sentinel = f"mt5.signal.sentinel.{uuid.uuid4()}"
        self.bus.publish(sentinel, b"")
        deadline = time.monotonic() + 5
        while sentinel not in self.subjects:
            assert time.monotonic() < deadline, "the bus did not deliver the sentinel"
            time.sleep(0.01)
        return [s for s in self.subjects if s.split(".")[2] == str(account_id)]

    def close(self) -> None:
        sub = self.subscription.result()
        asyncio.run_coroutine_threadsafe(sub.unsubscribe(), self.bus.loop).result(timeout=5)


@pytest.fixture
def published():
    capture = Published()
    yield capture
    capture.close()
