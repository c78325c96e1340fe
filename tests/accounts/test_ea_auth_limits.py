"""EA authentication limits that an attacker cannot turn against the victim, behind one trusted proxy
(TRUSTED_PROXY_HOPS=1): a real daphne for REST, the ASGI application for the WebSocket.

The attacker's bad keys for someone else's account back off the attacker's address only; the genuine EA at its own
address gets in. The address is the entry the proxy appended to X-Forwarded-For: a client-chosen first hop neither
escapes the count nor lands in the audit log.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

import binproto
from accounts.services import api_key_create
from accounts.throttle import EA_PAIR
from compliance.models import AuditLog
from suho.asgi import application
from suho.routers import operator_path
from tests.accounts.helpers import account_make, remote_addr_make, tenant_make
from tests.gateway.ea_client import hello, receive_until, server_env
from tests.servers import daphne_serving


@pytest.fixture
def victim(committed):
    account = account_make(tenant_make())
    return account, api_key_create(account=account)[1]


def _failed_addresses(account) -> set[str]:
    with operator_path():
        rows = AuditLog.objects.filter(event_type="ea_auth_failed", account_id=account.pk)
        return {str(row.ip_address) for row in rows}


def test_rest_behind_a_proxy_backs_off_the_attacker_not_the_genuine_ea(victim, tmp_path):
    account, key = victim
    attacker, genuine = remote_addr_make(), remote_addr_make()
    env = server_env(TRUSTED_PROXY_HOPS="1", PYTHONUNBUFFERED="1")
    with daphne_serving(env, tmp_path / "daphne.log") as port:

        def auth(api_key: str, client: str) -> int:
            spoofed = remote_addr_make()  # the client writes the first hop; the proxy appends what it saw
            body = json.dumps({"account_id": str(account.pk), "api_key": api_key}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/ea/auth", data=body,
                headers={"Content-Type": "application/json", "X-Forwarded-For": f"{spoofed}, {client}"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    return response.status
            except urllib.error.HTTPError as refused:
                return refused.code

        assert [auth("suho_ea_000000000000_wrong", attacker) for _ in range(EA_PAIR.free + 1)] == [401] * (
            EA_PAIR.free + 1
        )
        assert auth(key, attacker) == 429  # a fresh first hop each time did not reset the attacker's count
        assert auth(key, genuine) == 200  # the genuine EA is not locked out of its own account
    assert _failed_addresses(account) == {attacker}  # the proxy's client, never the spoofed first hop


async def _ws_auth(account, key: str, client: str) -> binproto.AuthStatus:
    headers = [(b"x-forwarded-for", f"{remote_addr_make()}, {client}".encode())]
    communicator = WebsocketCommunicator(application, "/ws/ea/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(bytes_data=hello(account, key))
    result = await receive_until(communicator, binproto.AuthResult)
    await communicator.disconnect()
    return result.status


async def test_websocket_behind_a_proxy_backs_off_the_attacker_not_the_genuine_ea(victim, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    account, key = victim
    attacker, genuine = remote_addr_make(), remote_addr_make()
    for _ in range(EA_PAIR.free + 1):
        assert await _ws_auth(account, "suho_ea_000000000000_wrong", attacker) == binproto.AuthStatus.BAD_KEY
    assert await _ws_auth(account, key, attacker) == binproto.AuthStatus.RATE_LIMITED
    assert await _ws_auth(account, key, genuine) == binproto.AuthStatus.OK
    assert await database_sync_to_async(_failed_addresses)(account) == {attacker}


def test_the_client_is_the_entry_the_trusted_proxies_appended():
    from suho.client_addr import client_addr

    header = "198.51.100.1, 203.0.113.9, 10.0.0.2"  # client-written, then what proxy 1 and proxy 2 saw
    assert client_addr(peer="10.0.0.3", forwarded_for=header, hops=0) == "10.0.0.3"
    assert client_addr(peer="10.0.0.3", forwarded_for=header, hops=1) == "10.0.0.2"
    assert client_addr(peer="10.0.0.3", forwarded_for=header, hops=2) == "203.0.113.9"
    assert client_addr(peer="10.0.0.3", forwarded_for="not-an-ip", hops=1) == "10.0.0.3"
    assert client_addr(peer="10.0.0.3", forwarded_for=None, hops=1) == "10.0.0.3"
