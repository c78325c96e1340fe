"""`/ws/portal/`: a signed-in trader's socket pushes their accounts' status when it changes; nobody else's."""

from __future__ import annotations

from decimal import Decimal

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from accounts.models import MT5Account
from accounts.services import mt5_account_create
from suho.cache import balance_key, cache_set_many, positions_key, quote_key
from suho.routers import operator_path
from tests.factories import make_quote
from tests.portal.conftest import trader_make
from trading.portal import CLOSE_NOT_SIGNED_IN, PortalConsumer


def _go_online(account_id):
    with operator_path():
        MT5Account.objects.filter(pk=account_id).update(connection_status="online", last_heartbeat_at=timezone.now())


async def test_status_turns_online_on_the_open_socket_and_shows_only_own_accounts(account, monkeypatch):
    monkeypatch.setattr("trading.portal.POLL_INTERVAL_S", 0.05)
    bob = await database_sync_to_async(trader_make)("Bob")
    await database_sync_to_async(mt5_account_create)(user=bob, name="Bob's")
    communicator = WebsocketCommunicator(PortalConsumer.as_asgi(), "/ws/portal/")
    communicator.scope["user"] = account.user
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert [(a["account_id"], a["online"]) for a in first["accounts"]] == [(str(account.account_id), False)]
    await database_sync_to_async(_go_online)(account.account_id)
    second = await communicator.receive_json_from(timeout=5)
    assert second["accounts"][0]["online"] is True
    await communicator.disconnect()


async def test_anonymous_socket_is_closed(committed):
    communicator = WebsocketCommunicator(PortalConsumer.as_asgi(), "/ws/portal/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected and code == CLOSE_NOT_SIGNED_IN
    # The disconnect a server sends after the close: the consumer stops and lets go of its channel-layer receive
    # itself. Left to the test loop's teardown, which cancels every task at once, that receive hung once in CI
    # (300 s, in channels_redis's cancellation).
    await communicator.disconnect()


async def _account_message(communicator) -> dict:
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "account":
            return message


async def test_an_account_pages_socket_pushes_its_balance_positions_and_quotes_as_they_change(account, monkeypatch):
    monkeypatch.setattr("trading.portal.POLL_INTERVAL_S", 0.05)
    await database_sync_to_async(make_quote)(account, symbol="EURUSD", bid=Decimal("1.08500"), ask=Decimal("1.08512"))
    position = {"ticket": 7, "symbol": "EURUSD", "type": "BUY", "volume": 0.01, "open_price": 1.085, "sl": 0,
                "tp": 0, "profit": 1.5}  # fmt: skip
    cache_set_many([(balance_key(account.account_id), 30, {"balance": 10000.0, "equity": 10001.5,
                                                           "timestamp": timezone.now().isoformat()}),
                    (positions_key(account.account_id), 10, [position])])  # fmt: skip
    communicator = WebsocketCommunicator(PortalConsumer.as_asgi(), f"/ws/portal/?account={account.account_id}")
    communicator.scope["user"] = account.user
    assert (await communicator.connect())[0]

    first = await _account_message(communicator)
    assert (first["balance"]["equity"], first["positions"], first["online"]) == (10001.5, [position], False)
    assert [(q["symbol"], q["bid"], q["ask"]) for q in first["quotes"]] == [("EURUSD", 1.085, 1.08512)]

    quote = {"bid": 1.0852, "ask": 1.08532, "spread": 12, "timestamp": timezone.now().isoformat()}
    cache_set_many([(quote_key(account.account_id, "EURUSD"), 5, quote)])
    second = await _account_message(communicator)
    assert [(q["bid"], q["ask"]) for q in second["quotes"]] == [(1.0852, 1.08532)], "pushed without a reload"
    await communicator.disconnect()


async def test_another_tenants_account_is_never_pushed(account, monkeypatch):
    monkeypatch.setattr("trading.portal.POLL_INTERVAL_S", 0.05)
    bob = await database_sync_to_async(trader_make)("Bob")
    bobs = await database_sync_to_async(mt5_account_create)(user=bob, name="Bob's")
    communicator = WebsocketCommunicator(PortalConsumer.as_asgi(), f"/ws/portal/?account={bobs.account_id}")
    communicator.scope["user"] = account.user
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from(timeout=5))["type"] == "status"
    assert await communicator.receive_nothing(timeout=0.5), "no account message for an account it cannot see"
    await communicator.disconnect()
