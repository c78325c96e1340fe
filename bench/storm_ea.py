"""One EA of the reconnect storm on a raw socket, written from docs/protocol.md (§6: HELLO with the access token,
AUTH_RESULT, then HEARTBEAT and an ACK for RISK_PARAMETERS and CONFIG_UPDATE), as a third-party EA would be.

The storm's EAs share the server's two cores (bench/reconnect.py): as `eaclient.EAClient`s (the websockets library,
the client's loops and bookkeeping) they spent 2.4 ms of CPU per EA, as much as the server's gateway. For the storm
this one sends the server what EAClient with an empty handler sends (eaclient's own HELLO, HEARTBEAT and ACKs, a
resent signal or command answered as its default handler answers it, the clean close with 1000) for about a seventh
of that: what the storm then measures is the server (decision 0033).

It is a storm client, not an EA: it does not wait out SESSION_CLOSING's `retry_after_ms` or stop after 4012, it
treats an AUTH_RESULT other than OK (RATE_LIMITED too) as the end, and a RECONNECT or RESTART_EA command is
acknowledged without reconnecting. None of these happens in a storm that goes well; each would show in its result.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
import time
from urllib.parse import urlsplit
from uuid import UUID

import binproto
from binproto import AckStatus, AuthStatus, CommandType, MsgType
from eaclient.client import MT5_BUILD, SIGNALS_UNSUPPORTED, TerminalStatus, ack_build, hello_build, now_us

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = struct.pack("!H", 1000)
MAX_BACKOFF_S = 30.0  # eaclient's default cap
CLOSE_WAIT_S = 10.0  # for the server's close frame after ours; then the socket is dropped


def client_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One final client frame, masked with `key` or else a fresh one (RFC 6455 §5.3)."""
    key = key or os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    stream = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")
    return head + key + masked


def server_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete frames off the front of `buffer` as (opcode, payload); a partial one stays. The server sends
    final, unmasked frames (a masked or fragmented one is a ProtocolError: this EA does not take it)."""
    frames = []
    while len(buffer) >= 2:
        first, second = buffer[0], buffer[1]
        if not first & 0x80 or second & 0x80:
            raise binproto.ProtocolError("the server sent a fragmented or masked frame")
        size, start = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                break
            size, start = struct.unpack_from("!H", buffer, 2)[0], 4
        elif size == 127:
            if len(buffer) < 10:
                break
            size, start = struct.unpack_from("!Q", buffer, 2)[0], 10
        if len(buffer) < start + size:
            break
        frames.append((first & 0x0F, bytes(buffer[start : start + size])))
        del buffer[: start + size]
    return frames


def handshake_request(url: str, key: bytes) -> bytes:
    parts = urlsplit(url)
    return (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: suho-bench-storm\r\n\r\n"
    ).encode()


def handshake_accepted(response: bytes, key: bytes) -> bool:
    """A 101 whose Sec-WebSocket-Accept answers our key (RFC 6455 §4.2.2)."""
    lines = response.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        return False
    expected = base64.b64encode(hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest())
    return any(
        name.strip().lower() == b"sec-websocket-accept" and value.strip() == expected
        for name, _, value in (line.partition(b":") for line in lines[1:])
    )


class StormEA(asyncio.Protocol):
    """One EA: connect, HELLO with its access token, HEARTBEAT once authenticated, ACK the risk parameters and the
    configuration; `resynced_at` (time.time()) once both arrived, and `finished` is then done. An attempt that fails
    before that (refused or lost connection, no resync within `timeout_s`) is retried with backoff (1, 2, 4 … s,
    jittered; counted in `retries`); a refusal (`refusal`) or a frame it cannot read (`error`) ends it. `close()`
    ends it with 1000, and no attempt starts after it."""

    def __init__(self, *, url: str, account_id: UUID, access_token: str, timeout_s: float = 10.0):
        self.url, self.account_id, self.access_token = url, UUID(str(account_id)), access_token
        self.timeout_s = timeout_s
        self.finished: asyncio.Future = asyncio.get_running_loop().create_future()
        self.resynced_at: float | None = None
        self.refusal = ""
        self.error = ""
        self.retries = 0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self._stopping = False
        self._pending: asyncio.Handle | asyncio.Task | None = None  # the next attempt, or the one connecting
        self._reset()

    def _reset(self) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._buffer = bytearray()
        self._upgraded = False
        self._risk = self._config = False

    def start(self) -> None:
        """One attempt: connect, and give up on it (then retry) if it is not resynced within `timeout_s`."""
        if not self._stopping:
            self._pending = asyncio.ensure_future(self._attempt())

    async def _attempt(self) -> None:
        parts = urlsplit(self.url)
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.get_running_loop().create_connection(lambda: self, parts.hostname, parts.port)
        except (OSError, TimeoutError):
            self._retry_later()

    # --- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.closed.clear()
        if self._stopping:  # close() came while this attempt was connecting
            transport.close()
            return
        self._pending = asyncio.get_running_loop().call_later(self.timeout_s, self._not_resynced_in_time)
        transport.write(handshake_request(self.url, self._key))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            if not self._upgraded:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                if not handshake_accepted(bytes(self._buffer[:end]), self._key):
                    raise binproto.ProtocolError(f"handshake refused: {bytes(self._buffer[:80])!r}")
                del self._buffer[: end + 4]
                self._upgraded = True
                hello = hello_build(self.account_id, access_token=self.access_token, ea_version="bench-storm")
                self._send(hello)
            for opcode, payload in server_frames(self._buffer):
                self._frame(opcode, payload)
        except binproto.ProtocolError as exc:
            self.error = str(exc)
            self._end()
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.closed.set()
        if self._pending is not None and not self.finished.done():
            self._pending.cancel()  # this attempt's timer
        if not self.finished.done() and not self._stopping:
            self._retry_later()

    # --- the session ----------------------------------------------------------------------------------------------

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if not self._stopping:  # the server closed: answer, and it drops the socket
                self._write(OP_CLOSE, payload[:2])
            self.transport.close()
        elif opcode == OP_BINARY:
            self._message(binproto.decode(payload))

    def _message(self, message) -> None:
        kind = type(message)
        if kind is binproto.AuthResult:
            if message.status != AuthStatus.OK:
                self.refusal = f"{AuthStatus(message.status).name.lower()}: {message.reason}"
                self._end()
                return
            status = TerminalStatus()
            self._send(binproto.Heartbeat(
                connection_status=binproto.ConnectionStatus.ONLINE, latency_ms=0, uptime_s=0, mt5_build=MT5_BUILD,
                terminal_connected=status.terminal_connected, trade_allowed=status.trade_allowed, error_count=0,
                last_error_code=0, last_error_message="", timestamp_us=now_us(),
            ))  # fmt: skip
        elif kind is binproto.RiskParameters:
            self._risk = True
            self._send(ack_build(MsgType.RISK_PARAMETERS, ref_version=message.risk_version))
        elif kind is binproto.ConfigUpdate:
            self._config = True
            self._send(ack_build(MsgType.CONFIG_UPDATE, ref_version=message.config_version))
        elif kind is binproto.TradingSignal:  # resent: answered as eaclient's default handler answers
            self._send(ack_build(MsgType.TRADING_SIGNAL, ref_id=message.signal_id, status=AckStatus.REJECTED,
                                 reason=SIGNALS_UNSUPPORTED))  # fmt: skip
        elif kind is binproto.Command:
            executed = message.command in (CommandType.RECONNECT, CommandType.RESTART_EA)
            self._send(ack_build(MsgType.COMMAND, ref_id=message.command_id,
                                 status=AckStatus.EXECUTED if executed else AckStatus.FAILED,
                                 reason="" if executed else SIGNALS_UNSUPPORTED))  # fmt: skip
        if self.resynced_at is None and self._risk and self._config:
            self.resynced_at = time.time()
            self._end()

    def _send(self, message) -> None:
        self._write(OP_BINARY, binproto.encode(message))

    def _write(self, opcode: int, payload: bytes) -> None:
        """Nothing after our close frame (RFC 6455 §5.5.1), nothing without a connection."""
        if self.transport is not None and not self._stopping:
            self.transport.write(client_frame(opcode, payload))

    def _end(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if not self.finished.done():
            self.finished.set_result(None)

    def _not_resynced_in_time(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # connection_lost retries

    def _retry_later(self) -> None:
        """Connection refused or lost before the resync: again after a jittered backoff, as an EA does."""
        self.retries += 1
        delay = min(MAX_BACKOFF_S, 2 ** (self.retries - 1)) * random.uniform(0.5, 1.0)
        self._reset()
        self._pending = asyncio.get_running_loop().call_later(delay, self.start)

    async def close(self) -> None:
        """The closing handshake with 1000 (the server then marks the account offline and audits it); an attempt
        waiting or connecting is called off."""
        if self._pending is not None:
            self._pending.cancel()
        if self.transport is None or self._stopping:
            self._stopping = True
            return
        self.transport.write(client_frame(OP_CLOSE, CLOSE_NORMAL))
        self._stopping = True
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.closed.wait()
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
