"""After NATS reconnects, the gateway resyncs every EA from the database (what was published meanwhile never reached
it), but first runs the session check: a session that another process took over while this one was cut off from
NATS (its takeover request lost) is closed with 4012 and is not sent the account's signals again, which its
successor is sent too (decision 0017). A session that still holds its account gets them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

import binproto
from accounts.services import ea_authenticate
from signals.models import TradingSignal
from suho.asgi import application
from suho.tenancy import tenant_context
from tests.gateway.ea_client import hello, receive_until
from trading.connection import ea_session_claim
from trading.gateway import hub

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def signal_recorded_only(tenant, account):
    """A pending signal in the database whose publication this process never saw (NATS was down)."""
    with tenant_context(tenant.id):
        now = timezone.now()
        return TradingSignal.objects.create(
            time=now, tenant=tenant, account=account, symbol="EURUSD", action="BUY", entry_price=1.0953,
            entry_price_min=1.0951, entry_price_max=1.0955, volume=0.1, valid_until=now + timedelta(minutes=5),
        ).signal_id  # fmt: skip


def taken_over_elsewhere(tenant, account, secret) -> None:
    """Another process claims the account for a new session; its request to close ours never arrives."""
    newer = ea_authenticate(account_id=account.account_id, api_key=secret)
    ea_session_claim(tenant_id=tenant.id, account_id=account.account_id, session_id=newer.session_id,
                     node="a-process-elsewhere")  # fmt: skip


async def connected(account, secret) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    assert (await communicator.connect())[0]
    await communicator.send_to(bytes_data=hello(account, secret))
    frame = None
    while not isinstance(frame, binproto.ConfigUpdate):  # AUTH_RESULT, then the resync
        frame = binproto.decode((await communicator.receive_output(timeout=5))["bytes"])
    return communicator


async def frames_until_closed(communicator) -> tuple[list, int]:
    """What the EA receives until the socket is closed, and the close code (a timeout fails the test)."""
    frames = []
    while (output := await communicator.receive_output(timeout=5))["type"] != "websocket.close":
        frames.append(binproto.decode(output["bytes"]))
    return frames, output["code"]


async def test_a_session_taken_over_while_nats_was_down_is_closed_not_resent_its_signals(ea_account):
    tenant, account, secret = ea_account
    communicator = await connected(account, secret)
    signal_id = await database_sync_to_async(signal_recorded_only)(tenant, account)
    await database_sync_to_async(taken_over_elsewhere)(tenant, account, secret)

    hub._on_reconnected()  # as the bus calls it, from its own loop
    frames, code = await frames_until_closed(communicator)

    assert code == binproto.CloseCode.REPLACED
    assert not [f for f in frames if isinstance(f, binproto.TradingSignal) and f.signal_id == signal_id]


async def test_a_session_that_still_holds_its_account_is_resent_what_it_missed(ea_account):
    tenant, account, secret = ea_account
    communicator = await connected(account, secret)
    signal_id = await database_sync_to_async(signal_recorded_only)(tenant, account)

    hub._on_reconnected()
    resent = await receive_until(communicator, binproto.TradingSignal)  # a close fails it

    assert resent.signal_id == signal_id
    await communicator.disconnect()
