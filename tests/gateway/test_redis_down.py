"""Redis down (issue 15, finding 10): the cache is a cache. EA authentication, signal intake and trade events work
without it, and a committed trade event is answered EVENT_ACK, not an internal ERROR (which would tell the EA
something false). Through a daphne whose REDIS_URL points at a port nothing listens on."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import pytest
import websockets
from channels.db import database_sync_to_async

import binproto
from accounts.services import api_key_create
from signals.services import ml_engine_key_create
from suho.tenancy import tenant_context
from tests.accounts.helpers import account_make, tenant_make
from tests.gateway.ea_client import hello, rows, server_env, trade_opened
from tests.servers import daphne_serving, free_port
from tests.signals.conftest import quote_put, reference_put, seed_json

TRADE_EVENTS = 20
DISCONNECT_S = 30.0
DISCONNECTED = (
    "SELECT count(*) FROM mt5_audit_log WHERE event_type = 'ea_disconnected' AND metadata->>'session_id' = %s"
)


@pytest.fixture(scope="module")
def redisless_port(django_db_setup, tmp_path_factory):
    env = server_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with daphne_serving(env, tmp_path_factory.mktemp("daphne-redis-down") / "daphne.log") as port:
        yield port


@pytest.fixture
def account_with_key(committed):
    tenant = tenant_make()
    account = account_make(tenant)
    with tenant_context(tenant.id):
        _key, secret = api_key_create(account=account)
    return tenant, account, secret


def _post(port: int, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict | bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body.startswith(b"{") else body[:200]
    finally:
        conn.close()


def test_ea_auth_answers_tokens_with_redis_down(redisless_port, account_with_key):
    _tenant, account, secret = account_with_key
    status, body = _post(redisless_port, "/api/ea/auth", {"account_id": str(account.account_id), "api_key": secret})
    assert status == 200, body
    assert body["account_id"] == str(account.account_id)


def test_a_signal_post_is_recorded_with_redis_down(redisless_port, account_with_key):
    tenant, account, _secret = account_with_key
    key = ml_engine_key_create(tenant_id=tenant.id, label="redis-down")[1]
    quote_put(account)
    reference_put()
    status, body = _post(
        redisless_port, "/api/signals/", seed_json(account.account_id), {"Authorization": f"Bearer {key}"}
    )
    assert status == 201, body
    assert body["status"] == "pending"


async def _until(socket, kind):
    while True:
        message = binproto.decode(await socket.recv())
        if isinstance(message, kind | binproto.Error):
            return message


async def test_committed_trade_events_are_acknowledged_with_redis_down(redisless_port, account_with_key):
    _tenant, account, secret = account_with_key
    async with websockets.connect(f"ws://127.0.0.1:{redisless_port}/ws/ea/", open_timeout=10) as socket:
        await socket.send(hello(account, secret))
        result = await _until(socket, binproto.AuthResult)
        assert isinstance(result, binproto.AuthResult) and result.status == binproto.AuthStatus.OK, result
        answers = []
        for seq in range(1, TRADE_EVENTS + 1):
            await socket.send(binproto.encode(trade_opened(ticket=9000 + seq, seq=seq)))
            answers.append(await _until(socket, binproto.EventAck))
    assert all(isinstance(a, binproto.EventAck) for a in answers), answers
    assert [(a.event_seq, a.status) for a in answers] == [
        (seq, binproto.EventAckStatus.ACCEPTED) for seq in range(1, TRADE_EVENTS + 1)
    ], answers
    stored = await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_trade_events WHERE account_id = %s", [account.account_id]
    )
    assert stored == [(TRADE_EVENTS,)]
    # The server's disconnect work is done before the fixture truncates (its transaction would race the TRUNCATE).
    deadline = time.monotonic() + DISCONNECT_S
    while await database_sync_to_async(rows)(DISCONNECTED, [str(result.session_id)]) != [(1,)]:
        assert time.monotonic() < deadline, "the server never recorded the disconnect"
        await asyncio.sleep(0.05)
