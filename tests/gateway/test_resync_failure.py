"""A resync the EA cannot be sent (an account saved with more allowed symbols than RISK_PARAMETERS carries, before the
limit was enforced at the edge) still delivers the rest and still leaves the session watched: revoking the key
closes the socket (issue 15, finding 8)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

import binproto
from accounts.models import ApiKey
from accounts.services import api_key_revoke
from suho.asgi import application
from suho.routers import operator_path
from tests.gateway.ea_client import hello
from trading.session_watch import session_watch

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def symbols_beyond_the_protocol(account) -> None:
    with connections["operator"].cursor() as cursor:  # a row from before the edge checked it (no validation here)
        cursor.execute(
            "UPDATE mt5_user_accounts SET allowed_symbols = %s::jsonb WHERE account_id = %s",
            ['["' + '","'.join(f"SYM{i}" for i in range(2000)) + '"]', account.account_id],
        )
        assert cursor.rowcount == 1


def revoke(account) -> None:
    with operator_path():
        key = ApiKey.objects.get(account_id=account.account_id)
    api_key_revoke(api_key=key)


async def frames_until(communicator, kind) -> list:
    frames = [binproto.decode((await communicator.receive_output(timeout=5))["bytes"])]
    while not isinstance(frames[-1], kind):
        frames.append(binproto.decode((await communicator.receive_output(timeout=5))["bytes"]))
    return frames


async def test_a_session_whose_resync_cannot_be_sent_is_still_closed_when_its_key_is_revoked(ea_account):
    _tenant, account, secret = ea_account
    await database_sync_to_async(symbols_beyond_the_protocol)(account)
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    assert (await communicator.connect())[0]
    await communicator.send_to(bytes_data=hello(account, secret))
    frames = await frames_until(communicator, binproto.ConfigUpdate)  # the rest of the resync still arrives
    assert frames[0].status == binproto.AuthStatus.OK
    await database_sync_to_async(revoke)(account)
    await session_watch().check()
    while (output := await communicator.receive_output(timeout=5))["type"] != "websocket.close":
        frames.append(binproto.decode(output["bytes"]))
    assert output["code"] == binproto.CloseCode.REVOKED
    assert [f.close_code for f in frames if isinstance(f, binproto.SessionClosing)] == [binproto.CloseCode.REVOKED]
    assert not any(isinstance(f, binproto.Error) for f in frames)  # nothing blamed on the EA
