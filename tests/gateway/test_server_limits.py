"""suho.server's limits where the bytes arrive, on a real server process (conftest's `server_url`; issue 15, findings
3 and 4): an EA flooding trade events is closed with 4008 while another tenant's events are still acknowledged and
the process's memory stays bounded; a reconnect right after is held off; a request body over HTTP_MAX_BODY_BYTES is
answered 413 before it is buffered, whether it announces its length or streams in chunks."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import binproto
from binproto import AuthStatus, CloseCode, EventAckStatus
from suho.server import frame_kind
from tests.gateway.ea_client import hello, trade_opened, wire_session
from tests.servers import SERVER_PIDS

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

WAIT_S = 30.0
FLOOD_MAX_FRAMES = 200_000  # the flood gives up (and the test fails) if the server has not closed it by then
RSS_GROWTH_LIMIT = 150 * 1024 * 1024  # acceptance: the process grows by less than this during a flood or a big body
BIG_BODY = 600 * 1024 * 1024
CHUNK = bytes(1024 * 1024)  # one zeroed MiB, sent again and again: the test never holds the body


def server_rss(port: int) -> int:
    with open(f"/proc/{SERVER_PIDS[port]}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def authenticated(url, account, secret):
    ws = await wire_session(url, account, secret, max_size=None, max_queue=None)  # read all, however fast
    async with asyncio.timeout(WAIT_S):
        while not isinstance(binproto.decode(await ws.recv()), binproto.ConfigUpdate):
            pass
    return ws


async def flood(ws, port: int) -> dict:
    """TRADE_OPENED frames without pause until the server closes the socket; what the server sent, the close code
    and the largest RSS seen."""
    seen: list = []

    async def read():
        try:
            while True:
                seen.append(binproto.decode(await ws.recv()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    reader = asyncio.create_task(read())
    peak_rss, sent = server_rss(port), 0
    try:
        while not reader.done() and sent < FLOOD_MAX_FRAMES:
            await ws.send(binproto.encode(trade_opened(1_000_000 + sent, 1_000 + sent)))
            await asyncio.sleep(0)  # the reader keeps up: the EA sees what the server sends, its close included
            sent += 1
            if sent % 500 == 0:
                peak_rss = max(peak_rss, server_rss(port))
    except ConnectionClosed:
        pass
    async with asyncio.timeout(WAIT_S):
        code = await reader
    return {"sent": sent, "seen": seen, "close_code": code, "peak_rss": max(peak_rss, server_rss(port))}


async def test_a_trade_event_flood_is_closed_with_rate_limited_and_another_tenant_keeps_its_acks(
    server_url, ea_accounts
):
    port = urlsplit(server_url).port
    (_t1, flooder, flooder_secret), (_t2, other, other_secret) = await database_sync_to_async(ea_accounts)(2, 1)
    calm = await authenticated(server_url, other, other_secret)
    noisy = await authenticated(server_url, flooder, flooder_secret)
    rss_before = server_rss(port)
    flooding = asyncio.create_task(flood(noisy, port))
    acks = []
    for seq in range(1, 6):  # the other tenant trades while the flood runs
        await calm.send(binproto.encode(trade_opened(50 + seq, seq)))
        async with asyncio.timeout(WAIT_S):
            while not isinstance(message := binproto.decode(await calm.recv()), binproto.EventAck):
                pass
        acks.append((message.event_seq, message.status))
    result = await flooding

    assert acks == [(seq, EventAckStatus.ACCEPTED) for seq in range(1, 6)]
    closings = [m for m in result["seen"] if isinstance(m, binproto.SessionClosing)]
    assert [(c.close_code, c.retry_after_ms) for c in closings] == [
        (CloseCode.RATE_LIMITED, binproto.RATE_LIMIT_RETRY_AFTER_S * 1000)
    ]
    assert result["close_code"] == CloseCode.RATE_LIMITED and result["sent"] < FLOOD_MAX_FRAMES
    assert result["peak_rss"] - rss_before < RSS_GROWTH_LIMIT

    # Reconnecting at once is refused before the key is checked, with the time left to wait.
    again = await connect(server_url, max_size=None)
    await again.send(hello(flooder, flooder_secret))
    async with asyncio.timeout(WAIT_S):
        refused = binproto.decode(await again.recv())
        closing = binproto.decode(await again.recv())
    assert refused.status == AuthStatus.RATE_LIMITED
    assert closing.close_code == CloseCode.RATE_LIMITED and 0 < closing.retry_after_ms <= 10_000
    await calm.close()


def test_a_text_frame_nested_too_deep_for_json_has_no_kind_of_its_own():
    assert frame_kind(b"[" * 100_000, is_binary=False) is None


async def test_a_text_frame_nested_too_deep_for_json_is_answered_as_malformed_and_the_session_goes_on(
    server_url, ea_accounts
):
    """The rate limiter reads a text frame's "type" before the consumer sees it: JSON nested too deep raised
    RecursionError there, which escaped the protocol and dropped the connection without a close frame."""
    [(_tenant, account, secret)] = await database_sync_to_async(ea_accounts)(1, 1)
    ws = await authenticated(server_url, account, secret)
    try:
        await ws.send("[" * 100_000)
        await ws.send(binproto.encode(trade_opened(7_000, 1)))
        seen = []
        async with asyncio.timeout(WAIT_S):
            while not any(isinstance(message, binproto.EventAck) for message in seen):
                seen.append(binproto.decode(await ws.recv()))
    finally:
        await ws.close()
    errors = [message for message in seen if isinstance(message, binproto.Error)]
    assert [error.code for error in errors] == [binproto.ErrorCode.MALFORMED_FRAME]


def post_big_body(port: int, *, chunked: bool) -> tuple[bytes, int]:
    """POST up to BIG_BODY bytes to /api/ea/auth, by Content-Length or chunked, stopping as soon as the server
    answers; (the response's first bytes, the server's largest RSS seen meanwhile)."""
    head = b"POST /api/ea/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % BIG_BODY
    chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
    peak_rss = server_rss(port)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < BIG_BODY and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(CHUNK)
                if sent % (32 * len(CHUNK)) == 0:
                    peak_rss = max(peak_rss, server_rss(port))
        except OSError:  # the server stopped listening to the body: its answer is already here
            pass
        response = sock.recv(4096)
    return response, max(peak_rss, server_rss(port))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_600_mb_body_is_refused_with_413_before_it_is_buffered(server_url, chunked):
    port = urlsplit(server_url).port
    rss_before = server_rss(port)
    response, peak_rss = post_big_body(port, chunked=chunked)
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert b'"too_large"' in response
    assert peak_rss - rss_before < RSS_GROWTH_LIMIT
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:  # still serving
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")


def test_a_body_within_the_limit_still_reaches_the_application(server_url):
    port = urlsplit(server_url).port
    body = b'{"account_id": "not-a-uuid", "api_key": "' + b"x" * (settings.HTTP_MAX_BODY_BYTES - 100) + b'"}'
    assert len(body) <= settings.HTTP_MAX_BODY_BYTES
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(b"POST /api/ea/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        deadline, response = time.monotonic() + WAIT_S, b""
        while b"\r\n\r\n" not in response and time.monotonic() < deadline:
            response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 400 "), response[:200]  # the application's own answer: a bad account id


def test_a_form_body_is_parsed_by_the_application_alone(server_url):
    """Twisted no longer parses a form's body before the application (daphne never reads its result): a malformed
    multipart body gets the API's own JSON error, not Twisted's bare 400 and a closed connection."""
    port = urlsplit(server_url).port
    body = b"no parts in here"
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(b"POST /api/ea/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))  # fmt: skip
        deadline, response = time.monotonic() + WAIT_S, b""
        while time.monotonic() < deadline and (chunk := sock.recv(4096)):
            response += chunk
    assert response.startswith(b"HTTP/1.1 4"), response[:200]
    assert b'"error"' in response and b'"code"' in response, response[:400]  # the API's error body
