"""A portal socket left open longer than the channel layer's blocking receive (5 s) is not an error (issue 20).

Every portal page opens `/ws/portal/`; Channels gives its consumer a channel on the Redis layer, whose receive is a
BZPOPMIN the server answers after 5 s of nothing. redis-py 8's default 5 s read timeout cut that wait short, so the
consumer died with `Timeout reading from …` and daphne logged the traceback when the browser left the page.
"""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from trading.portal import PortalConsumer

IDLE_S = RedisChannelLayer.brpop_timeout + 2


def test_the_layers_read_timeout_is_above_its_blocking_receive():
    (host,) = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    assert host["socket_timeout"] > RedisChannelLayer.brpop_timeout


async def test_an_idle_channel_receive_waits_instead_of_timing_out():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    try:
        await asyncio.wait_for(layer.receive(channel), timeout=IDLE_S)
    except TimeoutError as exc:  # asyncio's: nothing arrived, which is what an idle channel does
        assert type(exc) is TimeoutError
    finally:
        await layer.flush()


async def test_a_portal_socket_open_past_the_blocking_receive_closes_cleanly(account):
    communicator = WebsocketCommunicator(PortalConsumer.as_asgi(), "/ws/portal/")
    communicator.scope["user"] = account.user
    connected, _ = await communicator.connect()
    assert connected
    await communicator.receive_json_from(timeout=5)
    await asyncio.sleep(IDLE_S)
    await communicator.disconnect()  # re-raises what the consumer died of, if it died
