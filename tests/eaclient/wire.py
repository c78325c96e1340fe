"""A scripted Suho server for the EA client's own tests: a real WebSocket server (`websockets`) on a free loopback
port that answers HELLO as the test says and records every frame the EA sends, per connection.

It is not the gateway: it lets a test hold back an EVENT_ACK, deliver one signal twice across a reconnect, or hand
out a short-lived token, which the real server does not do on demand. What the real server does with the same EA is
tested through it (tests/gateway/test_simulated_ea.py, tests/signals/test_signal_reference_ea.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import binproto


def auth_ok(*, lifetime_s: float = 900.0, access: str = "access-1", refresh: str = "refresh-1") -> binproto.AuthResult:
    now_us = time.time_ns() // 1000
    return binproto.AuthResult(
        status=binproto.AuthStatus.OK, session_id=uuid.uuid4(), access_expires_us=now_us + int(lifetime_s * 1e6),
        server_time_us=now_us, access_token=access, refresh_token=refresh, reason="",
    )  # fmt: skip


class ScriptedServer:
    """`connections[i]` lists what the EA sent on its i-th connection (decoded); `sockets[i]` is that socket, for
    the test to send on or close. `auth` decides the AUTH_RESULT for each HELLO (default: OK, 15-minute token)."""

    def __init__(self, auth=None):
        self.auth = auth or (lambda hello: auth_ok())
        self.connections: list[list] = []
        self.sockets: list[ServerConnection] = []
        self.url = ""
        self._server = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws/ea/"
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._server.wait_closed()

    async def _serve(self, ws: ServerConnection) -> None:
        received: list = []
        self.connections.append(received)
        self.sockets.append(ws)
        try:
            async for frame in ws:
                message = binproto.decode(frame)
                received.append(message)
                if isinstance(message, binproto.Hello):
                    await ws.send(binproto.encode(self.auth(message)))
        except ConnectionClosed:
            pass

    async def until(self, found, what: str, timeout: float = 10.0):
        """Wait until `found()` returns something truthy (it may look at the client too, so it is polled) and
        return it."""
        deadline = time.monotonic() + timeout
        while not (result := found()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s; got {self.connections!r}")
            await asyncio.sleep(0.02)
        return result

    def sent(self, kind, connection: int | None = None) -> list:
        """What the EA sent of `kind`, on one connection or all of them."""
        pools = self.connections if connection is None else self.connections[connection : connection + 1]
        return [m for pool in pools for m in pool if isinstance(m, kind)]

    async def send(self, connection: int, message) -> None:
        await self.sockets[connection].send(binproto.encode(message))
