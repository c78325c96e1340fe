"""On the EA socket the tenant comes from verified credentials only: tenant A's key or token never reaches B."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

import binproto
from accounts.models import MT5Account, Tenant, User
from accounts.services import api_key_create, ea_authenticate
from eaclient.client import hello_build
from suho.asgi import application
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect, receive_until, rows, trade_opened

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def other_tenant_account():
    tenant = Tenant.objects.create(name="Beta", slug=f"beta-{uuid.uuid4().hex[:6]}")
    user = User.objects.create_user(username=f"b{uuid.uuid4().hex[:8]}", password="x" * 12, tenant=tenant)
    with tenant_context(tenant.id):
        account = MT5Account.objects.create(tenant=tenant, user=user, name="B")
        _key, secret = api_key_create(account=account)
    return tenant, account, secret


async def hello_with(account_id, token, method=binproto.AuthMethod.ACCESS_TOKEN):
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    await communicator.connect()
    secret = {"access_token": token} if method == binproto.AuthMethod.ACCESS_TOKEN else {"api_key": token}
    await communicator.send_to(bytes_data=binproto.encode(hello_build(account_id, **secret)))
    return communicator, await receive_until(communicator, binproto.AuthResult)


async def test_tenant_a_key_cannot_open_tenant_b_account(ea_account):
    _tenant, _account, secret_a = ea_account
    _tenant_b, account_b, _secret_b = await database_sync_to_async(other_tenant_account)()
    _communicator, result = await hello_with(account_b.account_id, secret_a, binproto.AuthMethod.API_KEY)
    assert result.status != binproto.AuthStatus.OK
    assert await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_ea_sessions WHERE account_id = %s", [account_b.account_id]
    ) == [(0,)]


async def test_tenant_a_token_cannot_claim_tenant_b_account(ea_account):
    _tenant, account_a, secret_a = ea_account
    _tenant_b, account_b, _secret_b = await database_sync_to_async(other_tenant_account)()
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account_a.account_id, api_key=secret_a)
    _communicator, result = await hello_with(account_b.account_id, tokens.access)
    assert result.status == binproto.AuthStatus.INVALID_TOKEN


async def test_an_expired_access_token_is_refused_as_expired(ea_account):
    _tenant, account, secret = ea_account
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    expired = AccessToken(tokens.access)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    _communicator, result = await hello_with(account.account_id, str(expired))
    assert result.status == binproto.AuthStatus.EXPIRED_TOKEN


async def test_a_forged_token_is_refused(ea_account):
    _tenant, account, _secret = ea_account
    forged = AccessToken()
    forged["tenant_id"], forged["account_id"] = str(uuid.uuid4()), str(account.account_id)
    forged["session_id"] = str(uuid.uuid4())
    token = str(forged)[:-4] + "abcd"  # signature no longer matches
    _communicator, result = await hello_with(account.account_id, token)
    assert result.status == binproto.AuthStatus.INVALID_TOKEN


async def test_a_trade_naming_another_tenants_signal_is_kept_without_the_link(ea_account):
    from signals.models import TradingSignal

    tenant_b, account_b, _ = await database_sync_to_async(other_tenant_account)()

    def signal_of_b():
        from django.utils import timezone

        with tenant_context(tenant_b.id):
            return TradingSignal.objects.create(
                time=timezone.now(), tenant=tenant_b, account=account_b, symbol="EURUSD", action="BUY", volume=0.1,
                valid_until=timezone.now() + timedelta(minutes=5)).signal_id  # fmt: skip

    signal_b = await database_sync_to_async(signal_of_b)()
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    await communicator.send_to(bytes_data=binproto.encode(trade_opened(777, 1, signal_id=signal_b)))
    ack = await receive_until(communicator, binproto.EventAck)
    assert ack.status == binproto.EventAckStatus.ACCEPTED
    assert await database_sync_to_async(rows)("SELECT signal_id FROM mt5_trade_orders WHERE ticket = 777", []) == [
        (None,)
    ]
    assert await database_sync_to_async(rows)(
        "SELECT status FROM mt5_trading_signals WHERE signal_id = %s", [signal_b]
    ) == [("pending",)]
    time.sleep(0)


async def test_revoking_the_key_ends_its_live_session(ea_account, monkeypatch):
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke
    from trading import session_watch

    monkeypatch.setattr(session_watch, "SESSION_CHECK_INTERVAL_S", 0.2)  # production: 30 s, inside the one-minute goal
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)

    def revoke():
        key = ApiKey.objects.using("operator").get(account_id=account.account_id)
        api_key_revoke(api_key=key)

    await database_sync_to_async(revoke)()
    closing = await receive_until(communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.REVOKED


async def test_an_access_token_reconnects_and_an_in_band_refresh_renews_it(ea_account):
    _tenant, account, secret = ea_account
    tokens = await database_sync_to_async(ea_authenticate)(account_id=account.account_id, api_key=secret)
    communicator, result = await hello_with(account.account_id, tokens.access)
    assert result.status == binproto.AuthStatus.OK
    assert result.session_id == tokens.session_id
    await communicator.send_to(bytes_data=binproto.encode(binproto.TokenRefresh(refresh_token=tokens.refresh)))
    renewed = await receive_until(communicator, binproto.AuthResult)
    assert renewed.status == binproto.AuthStatus.OK
    assert renewed.access_token and renewed.access_token != tokens.access
    await communicator.send_to(bytes_data=binproto.encode(binproto.TokenRefresh(refresh_token=tokens.refresh)))
    reused = await receive_until(communicator, binproto.AuthResult)
    assert reused.status != binproto.AuthStatus.OK  # an old refresh token is refused (theft defence)


async def test_a_legacy_v1_ea_authenticates_in_the_handshake_and_streams_prices(ea_account):
    from tests.gateway.ea_client import v1_packet
    from trading.gateway import batchers_flush

    _tenant, account, secret = ea_account
    headers = [
        (b"authorization", f"Bearer {secret}".encode()),
        (b"x-suho-account-id", str(account.account_id).encode()),
    ]
    communicator = WebsocketCommunicator(application, "/ws/ea/", headers=headers)
    assert (await communicator.connect())[0]
    boot_ms = 123_456_789  # the legacy EA's GetTickCount(): not an epoch time
    await communicator.send_to(bytes_data=v1_packet([(1, 1.0951, 1.0953), (3, 149.85, 149.87)], boot_ms * 1000))
    assert await communicator.receive_nothing(timeout=0.3)  # a legacy EA is sent nothing
    await communicator.disconnect()
    await batchers_flush()
    stored = await database_sync_to_async(rows)(
        "SELECT symbol, bid::float, timestamp_trusted, time > now() - interval '1 minute' FROM mt5_broker_quotes"
        " WHERE account_id = %s ORDER BY symbol", [account.account_id])  # fmt: skip
    assert stored == [("EURUSD", pytest.approx(1.0951), False, True), ("USDJPY", pytest.approx(149.85), False, True)]


async def test_a_legacy_handshake_with_a_bad_key_is_closed_without_a_word(ea_account):
    _tenant, account, _secret = ea_account
    communicator = WebsocketCommunicator(
        application, f"/ws/ea/?account_id={account.account_id}&api_key=suho_ea_0000_nope"
    )
    await communicator.connect()
    output = await communicator.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": binproto.CloseCode.AUTH_FAILED}


async def test_a_revoked_key_is_refused_with_close_code_revoked(ea_account):
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke

    _tenant, account, secret = ea_account
    await database_sync_to_async(
        lambda: api_key_revoke(api_key=ApiKey.objects.using("operator").get(account_id=account.account_id))
    )()
    _communicator, result = await hello_with(account.account_id, secret, binproto.AuthMethod.API_KEY)
    assert result.status == binproto.AuthStatus.REVOKED_KEY
    closing = await receive_until(_communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.REVOKED
