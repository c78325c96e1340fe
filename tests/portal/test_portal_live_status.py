"""`/ws/portal/`: a signed-in trader's socket pushes their accounts' status when it changes; nobody else's."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from accounts.consumers import CLOSE_NOT_SIGNED_IN, PortalConsumer
from accounts.models import MT5Account
from accounts.services import mt5_account_create
from suho.routers import operator_path
from tests.portal.conftest import trader_make


def _go_online(account_id):
    with operator_path():
        MT5Account.objects.filter(pk=account_id).update(connection_status="online", last_heartbeat_at=timezone.now())


async def test_status_turns_online_on_the_open_socket_and_shows_only_own_accounts(account, monkeypatch):
    monkeypatch.setattr("accounts.consumers.POLL_INTERVAL_S", 0.05)
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
