"""The server's keep-alive pings (suho.server.EAWebSocketProtocol.check_timeouts, decision 0042): connections that
went quiet together are each still pinged, at moments spread over daphne's 2 s check (PING_SPREAD_S) rather than all
in one turn of its event loop, which held up everything else the process had to do (a signal POST's delivery among
it) for as long as the pings and their pongs took."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import pytest

from bench.storm_ea import OP_PING, handshake_accepted, handshake_request, server_frames
from tests.gateway.ea_client import server_with_options

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

CONNECTIONS = 40
PING_INTERVAL_S = 1  # daphne's --ping-interval: a connection silent this long is due a ping (20 s by default)
# A first ping comes within the interval, daphne's 2 s check and the 2 s spread (~5 s); each connection is closed at
# 10 s for the HELLO it never sends.
WAIT_S = 8.0
BIN_S = 0.1


@pytest.fixture(scope="module")
def pinging_port(django_db_setup, tmp_path_factory):
    with server_with_options(tmp_path_factory, "daphne-pings", "--ping-interval", str(PING_INTERVAL_S)) as port:
        yield port


async def opened(port: int):
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16))
        writer.write(handshake_request(f"ws://127.0.0.1:{port}/ws/ea/", key))
        assert handshake_accepted(await reader.readuntil(b"\r\n\r\n"), key)
    return reader, writer


async def first_ping(reader, writer) -> float:
    """When the connection's first ping arrived (time.monotonic()); it sends nothing itself."""
    buffer = bytearray()
    try:
        async with asyncio.timeout(WAIT_S):
            while data := await reader.read(4096):
                buffer += data
                if any(opcode == OP_PING for opcode, _payload in server_frames(buffer)):
                    return time.monotonic()
        raise AssertionError("the server closed the connection before pinging it")
    finally:
        writer.close()


def test_connections_that_went_quiet_together_are_each_pinged_at_moments_spread_over_the_check(pinging_port):
    async def run():
        connections = await asyncio.gather(*(opened(pinging_port) for _ in range(CONNECTIONS)))
        return await asyncio.gather(*(first_ping(reader, writer) for reader, writer in connections))

    arrivals = asyncio.run(run())  # each connection was pinged: `first_ping` fails otherwise

    spread = max(arrivals) - min(arrivals)
    bins = {int((at - min(arrivals)) / BIN_S) for at in arrivals}
    # At once, the 40 pings land in one or two 100 ms bins; spread uniformly over 2 s, in ~17 of its 20 on average.
    assert len(bins) >= 10, f"{len(bins)} bins of {BIN_S} s over {spread:.2f} s"
