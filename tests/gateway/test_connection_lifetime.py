"""The end of a connection's lifetime (suho.server.EAWebSocketProtocol.onOpen, decision 0043): each connection is
closed with 1000 at a random moment of the last LIFETIME_SPREAD of daphne's `websocket_timeout`, so connections
opened together (one reconnect storm) are not all closed, and do not all reconnect, together a lifetime later."""

from __future__ import annotations

import asyncio
import struct
import time
from types import SimpleNamespace

import pytest

from bench.storm_ea import OP_CLOSE, server_frames
from suho.server import LIFETIME_SPREAD, EAWebSocketProtocol, reactor  # the reactor it schedules on
from tests.gateway.ea_client import raw_ws_opened, server_with_options

CONNECTIONS = 40
LIFETIME_S = 4  # daphne's --websocket_timeout (24 h in production); under the 10 s an EA has to send HELLO
LATE_S = 1.0  # what a loaded machine may add to a close; daphne's own check would come up to 2 s late
BIN_S = 0.05
HANDSHAKES_S = 8.0


@pytest.fixture(scope="module")
def short_lived_port(django_db_setup, tmp_path_factory):
    with server_with_options(tmp_path_factory, "daphne-lifetime", "--websocket_timeout", str(LIFETIME_S)) as port:
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


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
def test_connections_opened_together_are_closed_at_moments_spread_over_the_end_of_their_lifetime(short_lived_port):
    async def run():
        started = time.monotonic()  # before every handshake, from which the server counts a lifetime
        connections = await asyncio.gather(*(raw_ws_opened(short_lived_port, HANDSHAKES_S) for _ in range(CONNECTIONS)))
        opened_at = time.monotonic()  # after every handshake
        closes = await asyncio.gather(*(closed_after(reader, writer, opened_at) for reader, writer in connections))
        return closes, opened_at - started

    closes, handshakes_s = asyncio.run(run())

    assert {code for _after, code in closes} == {1000}
    afters = sorted(after for after, _code in closes)
    assert afters[0] + handshakes_s >= LIFETIME_S * (1 - LIFETIME_SPREAD), afters  # not before 90 %
    assert afters[-1] <= LIFETIME_S + LATE_S, afters
    bins = {int(after / BIN_S) for after in afters}
    # In daphne's check the 40 close together, in one 50 ms bin; spread over 0.4 s, in ~8 of its 8 on average.
    assert len(bins) >= 4, f"{len(bins)} bins of {BIN_S} s: {afters}"


def test_a_connection_closed_before_the_end_of_its_lifetime_leaves_no_close_scheduled():
    """onClose cancels the lifetime's close: left scheduled, it would hold the closed connection for up to a day. On a
    bare protocol with the attributes daphne's onOpen and onClose read: a server process does not show what its
    reactor still holds."""
    protocol = EAWebSocketProtocol()
    protocol.server = SimpleNamespace(websocket_timeout=3600, log_action=lambda *args: None,
                                      protocol_disconnected=lambda protocol: None)  # fmt: skip
    protocol.request, protocol.client_addr = SimpleNamespace(path="/ws/ea/"), ("127.0.0.1", 50000)
    protocol.socket_opened, protocol.muted, protocol.limit_close_code = time.time(), True, None

    protocol.onOpen()
    scheduled = protocol.lifetime_end
    assert scheduled in reactor.getDelayedCalls()
    assert 3600 * (1 - LIFETIME_SPREAD) - 1 <= scheduled.getTime() - time.time() <= 3600

    protocol.onClose(False, 1006, "connection lost")

    assert scheduled not in reactor.getDelayedCalls() and protocol.lifetime_end is None
