"""The server's keep-alive pings (suho.server.EAWebSocketProtocol.check_timeouts, decision 0042): connections that
went quiet together are each still pinged, at moments spread over daphne's 2 s check (PING_SPREAD_S) rather than all
in one turn of its event loop, which held up everything else the process had to do (a signal POST's delivery among
it) for as long as the pings and their pongs took. And a connection that does not answer its ping is dropped, without
a close frame, at the ping timeout, as docs/protocol.md §1 tells EA authors."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.storm_ea import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    client_frame,
    server_frames,
)
from tests.gateway.ea_client import raw_ws_opened, server_with_options

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

CONNECTIONS = 40
PING_INTERVAL_S = 1  # daphne's --ping-interval: a connection silent this long is due a ping (20 s by default)
# A first ping comes within the interval, daphne's 2 s check and the 2 s spread (~5 s); each connection is closed at
# 10 s for the HELLO it never sends, after the last moment the tests look (5 s + KEPT_S).
WAIT_S = 8.0
BIN_S = 0.1
PING_TIMEOUT_S = 3  # daphne's --ping-timeout (30 s by default): a ping unanswered this long drops the connection
KEPT_S = PING_TIMEOUT_S + 0.5  # an answering connection must still be open this long after its first ping (≤ 5 s in)
LATE_PONG_S = 1.5  # under the timeout (2 to 3 s), and after the next ping is due (0 to 4 s after one) in 28 % of pings
LATE_ANSWERING = 10  # without the one-ping-at-a-time rule, one or more of them is dropped in ~96 % of runs


@pytest.fixture(scope="module")
def pinging_port(django_db_setup, tmp_path_factory):
    with server_with_options(tmp_path_factory, "daphne-pings", "--ping-interval", str(PING_INTERVAL_S)) as port:
        yield port


@pytest.fixture(scope="module")
def strict_port(django_db_setup, tmp_path_factory):
    options = ("--ping-interval", str(PING_INTERVAL_S), "--ping-timeout", str(PING_TIMEOUT_S))
    with server_with_options(tmp_path_factory, "daphne-ping-timeout", *options) as port:
        yield port


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
        connections = await asyncio.gather(*(raw_ws_opened(pinging_port, WAIT_S) for _ in range(CONNECTIONS)))
        return await asyncio.gather(*(first_ping(reader, writer) for reader, writer in connections))

    arrivals = asyncio.run(run())  # each connection was pinged: `first_ping` fails otherwise

    spread = max(arrivals) - min(arrivals)
    bins = {int((at - min(arrivals)) / BIN_S) for at in arrivals}
    # At once, the 40 pings land in one or two 100 ms bins; spread uniformly over 2 s, in ~17 of its 20 on average.
    assert len(bins) >= 10, f"{len(bins)} bins of {BIN_S} s over {spread:.2f} s"


async def pinged_then(reader, writer, answer_after_s: float | None) -> tuple[float, float | None, bool]:
    """When the first ping arrived; when the server ended the connection (None: still open KEPT_S after that ping);
    whether a close frame came. The connection sends nothing but, unless `answer_after_s` is None, a pong to each ping
    that many seconds after it."""
    loop = asyncio.get_running_loop()
    buffer, first_ping, close_seen = bytearray(), None, False
    try:
        while True:
            wait_s = WAIT_S if first_ping is None else first_ping + KEPT_S - time.monotonic()
            try:
                data = await asyncio.wait_for(reader.read(4096), max(wait_s, 0))
            except TimeoutError:
                assert first_ping is not None, f"no ping within {WAIT_S} s"
                return first_ping, None, close_seen  # open past the ping's timeout
            except ConnectionResetError:
                data = b""
            if not data:
                assert first_ping is not None, "the server ended the connection before pinging it"
                return first_ping, time.monotonic(), close_seen
            buffer += data
            for opcode, payload in server_frames(buffer):
                close_seen = close_seen or opcode == OP_CLOSE
                if opcode == OP_PING:
                    first_ping = first_ping or time.monotonic()
                    if answer_after_s is not None:
                        loop.call_later(answer_after_s, writer.write, client_frame(OP_PONG, payload))
    finally:
        writer.close()


def test_a_connection_that_does_not_answer_a_ping_is_dropped_without_a_close_frame_and_those_that_do_are_not(
    strict_port,
):
    """docs/protocol.md §1: a connection from which neither the ping's pong nor a message arrives within the ping
    timeout is dropped without a close frame; one that answers stays, also when its pong comes late, after the time
    the next ping would have been due (autobahn ignored the late pong of an earlier ping, and dropped the connection
    at that ping's timeout, until the server stopped pinging while a ping is unanswered; decision 0042)."""

    async def run():
        connections = await asyncio.gather(*(raw_ws_opened(strict_port, WAIT_S) for _ in range(1 + 1 + LATE_ANSWERING)))
        answers = [None, 0.0, *[LATE_PONG_S] * LATE_ANSWERING]
        return await asyncio.gather(
            *(pinged_then(*connection, after) for connection, after in zip(connections, answers, strict=True))
        )

    (pinged, dropped, close_frame), *answering = asyncio.run(run())

    assert dropped is not None, f"the silent connection was not dropped within {KEPT_S} s of its ping"
    assert not close_frame, "the silent connection got a close frame"
    # autobahn's timer rounds the timeout's end down to a whole second (txaio's batched timer): up to 1 s early
    assert dropped - pinged >= PING_TIMEOUT_S - 1.5, dropped - pinged
    ended = [ended_at - first_ping for first_ping, ended_at, _ in answering if ended_at is not None]
    assert not ended, f"{len(ended)} connections that answered their ping were ended, s after the ping: {ended}"
