"""The end of a connection's lifetime (suho.server.EAWebSocketProtocol.onOpen, decision 0043): each connection is
closed with 1000 at a random moment of the last LIFETIME_SPREAD of daphne's `websocket_timeout`, so connections
opened together (one reconnect storm) are not all closed, and do not all reconnect, together a lifetime later."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from bench.storm_ea import OP_CLOSE, server_frames
from suho.server import LIFETIME_SPREAD
from tests.gateway.ea_client import server_env
from tests.gateway.test_keepalive_pings import opened
from tests.servers import daphne_serving

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

CONNECTIONS = 40
LIFETIME_S = 4  # daphne's --websocket_timeout (24 h in production); under the 10 s an EA has to send HELLO
LATE_S = 1.0  # what a loaded machine may add to a close; daphne's own check would come up to 2 s late
BIN_S = 0.05


@pytest.fixture(scope="module")
def short_lived_port(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("daphne-lifetime") / "daphne.log"
    with daphne_serving(server_env(), log, ("--websocket_timeout", str(LIFETIME_S))) as port:
        yield port


async def closed_after(reader, writer, opened_at: float) -> tuple[float, int]:
    """How long after `opened_at` the server's close frame arrived, and its code; the connection sends nothing."""
    buffer = bytearray()
    try:
        async with asyncio.timeout(LIFETIME_S + LATE_S + 3):
            while data := await reader.read(4096):
                buffer += data
                for opcode, payload in server_frames(buffer):
                    if opcode == OP_CLOSE:
                        return time.monotonic() - opened_at, struct.unpack("!H", payload[:2])[0]
        raise AssertionError("the connection was dropped without a close frame")
    finally:
        writer.close()


def test_connections_opened_together_are_closed_at_moments_spread_over_the_end_of_their_lifetime(short_lived_port):
    async def run():
        connections = await asyncio.gather(*(opened(short_lived_port) for _ in range(CONNECTIONS)))
        opened_at = time.monotonic()  # each handshake was answered by now, and began before
        return await asyncio.gather(*(closed_after(reader, writer, opened_at) for reader, writer in connections))

    closes = asyncio.run(run())

    assert {code for _after, code in closes} == {1000}
    afters = sorted(after for after, _code in closes)
    assert afters[0] >= LIFETIME_S * (1 - LIFETIME_SPREAD) - 0.5, afters  # not before 90 % (less the handshakes)
    assert afters[-1] <= LIFETIME_S + LATE_S, afters
    bins = {int(after / BIN_S) for after in afters}
    # In daphne's check the 40 close together, in one 50 ms bin; spread over 0.4 s, in ~8 of its 8 on average.
    assert len(bins) >= 4, f"{len(bins)} bins of {BIN_S} s: {afters}"
