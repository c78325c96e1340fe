"""The EA WebSocket (`/ws/ea/`): Suho Binary Protocol in binary frames, its JSON form in text frames.

The consumer parses, checks the connection's state and limits, and calls one service per message kind; it never
lets an exception escape. Authentication is the first frame (HELLO, with an API key or an access token); the
tenant comes from the verified credentials only. Close codes: binproto.CloseCode (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from urllib.parse import parse_qs
from uuid import UUID

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DataError

import binproto
from accounts import services as account_services
from binproto import AuthStatus, CloseCode, ErrorCode, MsgType
from quotes.ingest import TickRow
from suho.asyncdb import db_thread
from suho.drain import DRAIN_REASON, drain_retry_after_ms, draining
from trading import connection as connection_services
from trading import outbound_batch
from trading.gateway import NODE, SESSION_REPLACED_REASON, batcher, hub
from trading.ingest import (
    REPLACED,
    BalanceRow,
    HeartbeatRow,
    positions_cache_write,
    profile_update,
    trade_event_record,
)
from trading.session_watch import session_watch

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10
MAX_ERRORS = 10  # the 10th counted protocol error within ERROR_WINDOW_S closes the connection (docs/protocol.md §9)
ERROR_WINDOW_S = 60
COUNTED_ERRORS = frozenset(
    {ErrorCode.MALFORMED_FRAME, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNKNOWN_TYPE, ErrorCode.NOT_ALLOWED_IN_STATE}
)  # the EA's own garbage; not UNKNOWN_SYMBOL (it resends)
MAX_UNACKED_OUTBOUND = 256  # server messages the EA has not acknowledged: a reader that stopped reading


CLOCK_SKEW_REASON = "HELLO timestamp is {skew_s:+.0f} s off the server clock (limit ±{limit_s} s)"
SESSION_NAMES = {session.value: session.name.lower() for session in binproto.MarketSession}  # per tick: no enum call
MAX_PRICE = 1e11  # mt5_* price columns are numeric(20, 8); the wire allows up to 1e15
TICK_PRICE_OUT_OF_RANGE = "tick with a price outside (0, 1e11] dropped"


def in_thread(func):
    """Run blocking work (database, Argon2) in the thread pool, not Channels' single shared thread: one slow
    HELLO must not hold up every other connection's trade events."""
    return db_thread(func)


SESSION_NOT_ACTIVE = "session is not active for this account"
REFUSAL_CLOSE_CODES = {AuthStatus.REVOKED_KEY: CloseCode.REVOKED, AuthStatus.RATE_LIMITED: CloseCode.RATE_LIMITED}


def _now_us() -> int:
    return time.time_ns() // 1000


def _handshake_credentials(scope) -> tuple[str, str] | None:
    """A legacy v1 EA's credentials from the handshake: `Authorization: Bearer <api key>` with
    `X-Suho-Account-Id: <account id>`, or the query string `?account_id=…&api_key=…`. None: expect HELLO."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    authorization = headers.get("authorization", "")
    api_key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    api_key = api_key or (query.get("api_key") or [""])[0]
    account_id = headers.get("x-suho-account-id") or (query.get("account_id") or [""])[0]
    return (account_id, api_key) if api_key and account_id else None


class EAConsumer(AsyncWebsocketConsumer):
    # No channel layer: outbound messages come from NATS through the delivery hub, and a layer would cost every
    # connection a Redis receive loop (and channels-redis drops messages at capacity).
    channel_layer_alias = "ea-gateway-uses-nats"

    async def dispatch(self, message) -> None:
        """Channels' dispatch hops to a thread to close stale database connections before every message; this
        consumer never touches the database on the event loop (its database work runs in `in_thread`, which does
        that clean-up itself), so one hop per tick frame is pure overhead (~20 % of the loop at 24k ticks/s)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.authenticated = False
        self.claims = None
        self.epoch = 0  # the live-session epoch this connection's session claimed (decision 0017)
        self.symbol_table: dict[int, str] = {}
        self.v1_symbols: dict[int, str] = dict(binproto.DEFAULT_V1_SYMBOLS)
        self.errors: deque[float] = deque()
        self.unacked: dict[UUID, float] = {}
        self.closing = False
        self.legacy = False  # a v1 EA authenticated in the handshake: it is sent nothing but the close frame
        self.tasks: set[asyncio.Task] = set()
        await self.accept()
        if draining():  # the balancer has not noticed yet: send this EA to another process
            await self.ea_drain({"type": "ea.drain"})
            return
        handshake = _handshake_credentials(self.scope)
        if handshake is not None:  # a legacy v1 EA: authenticated in the handshake, never sends HELLO
            if not await self._held_after_rate_limit(handshake[0], send_result=False):
                await self._authenticate_api_key(*handshake, ea_version="legacy-v1", send_result=False)
            return
        self._spawn(self._hello_deadline())

    def _spawn(self, coroutine) -> None:
        """Run a connection-scoped task; it is forgotten when done and cancelled on disconnect."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def disconnect(self, code) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        if self.authenticated:
            hub.unregister(str(self.claims.account_id), self)
            session_watch().discard(self)
            try:
                if code == CloseCode.RATE_LIMITED:  # suho.server closed it on arrival: hold its reconnects
                    await in_thread(connection_services.ea_rate_limit_hold)(account_id=self.claims.account_id)
                await outbound_batch.outbound_flush()  # what this EA told us is committed before it reconnects
                await in_thread(connection_services.ea_disconnected)(
                    tenant_id=self.claims.tenant_id, account_id=self.claims.account_id,
                    session_id=self.claims.session_id, close_code=code, epoch=self.epoch,
                )  # fmt: skip
            except Exception:
                log.exception("disconnect bookkeeping failed", extra={"account_id": self.claims.account_id})

    async def ea_drain(self, message) -> None:
        """This process is shutting down (suho.server's drain queued this message behind the frames already read, so
        their trade events are recorded and acknowledged first): close with 1012 and a jittered reconnect delay."""
        await self.close_with(CloseCode.SERVICE_RESTART, DRAIN_REASON, retry_after_ms=drain_retry_after_ms())

    # --- inbound -------------------------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            if self.closing:  # rate limits are counted where frames arrive, in suho.server
                return
            if bytes_data is not None:
                await self._receive_frame(bytes_data)
            elif text_data is not None:
                await self._receive_json(text_data)
        except binproto.ProtocolError as exc:
            await self._protocol_error(exc.code, str(exc))
        except Exception:
            log.exception("EA message failed", extra=self._log_context())
            await self._send_message(binproto.Error(code=ErrorCode.INTERNAL_ERROR, reason="internal error"))

    async def _receive_frame(self, data: bytes) -> None:
        if len(data) > binproto.MAX_FRAME_SIZE:
            await self._protocol_error(ErrorCode.TOO_LARGE, f"frame of {len(data)} bytes exceeds the limit")
            await self.close_with(CloseCode.TOO_LARGE, f"a frame over {binproto.MAX_FRAME_SIZE} bytes")
            return
        if self.authenticated and len(data) >= binproto.HEADER_SIZE and data[6] == MsgType.PRICE_STREAM:
            if data[4] == binproto.V1:
                timestamp_us, records = binproto.decode_v1_price_records(data)
                self._ingest_v1_ticks(timestamp_us, records)
            else:
                timestamp_us, rows = binproto.decode_price_rows(data, self.symbol_table)
                self._ingest_ticks(timestamp_us, rows)
            return
        await self._dispatch(binproto.decode(data))

    async def _receive_json(self, text: str) -> None:
        if len(text) > binproto.MAX_JSON_FRAME_SIZE:
            await self._protocol_error(ErrorCode.TOO_LARGE, "text frame exceeds the limit")
            await self.close_with(CloseCode.TOO_LARGE, f"a text frame over {binproto.MAX_JSON_FRAME_SIZE} characters")
            return
        await self._dispatch(binproto.from_json(text))

    async def _dispatch(self, message) -> None:
        if not self.authenticated:
            if isinstance(message, binproto.Hello):
                await self._hello(message)
            else:
                await self._send_message(binproto.Error(code=ErrorCode.NOT_AUTHENTICATED, reason="send HELLO first"))
                await self.close_with(CloseCode.AUTH_FAILED, "the first frame must be HELLO")
            return
        handler = {
            binproto.PriceStream: self._price_stream,
            binproto.SymbolTable: self._symbol_table,
            binproto.AccountProfile: self._profile,
            binproto.AccountFinance: self._finance,
            binproto.Heartbeat: self._heartbeat,
            binproto.TradeOpened: self._trade_event,
            binproto.TradeClosed: self._trade_event,
            binproto.TradeModified: self._trade_event,
            binproto.Positions: self._positions,
            binproto.Ack: self._ack,
            binproto.TokenRefresh: self._token_refresh,
        }.get(type(message))
        if handler is None:
            await self._protocol_error(ErrorCode.NOT_ALLOWED_IN_STATE, f"{message.TYPE.name} is not allowed now")
            return
        await handler(message)

    async def _hello(self, hello: binproto.Hello) -> None:
        if binproto.V2 not in hello.protocol_versions and binproto.V1 not in hello.protocol_versions:
            await self._refuse(AuthStatus.UNSUPPORTED_VERSION, "no supported protocol version", hello.account_id)
            return
        skew_us = hello.timestamp_us - _now_us()
        if abs(skew_us) > binproto.MAX_HELLO_SKEW_US:
            reason = CLOCK_SKEW_REASON.format(skew_s=skew_us / 1e6, limit_s=binproto.MAX_HELLO_SKEW_US // 1_000_000)
            await self._refuse(AuthStatus.CLOCK_SKEW, reason, hello.account_id)
            return
        if await self._held_after_rate_limit(hello.account_id):
            return
        if hello.auth_method == binproto.AuthMethod.API_KEY:
            await self._authenticate_api_key(hello.account_id, hello.access_token, ea_version=hello.ea_version)
            return
        try:
            claims = account_services.ea_access_verify(token=hello.access_token)
            if str(claims.account_id) != str(hello.account_id):
                raise account_services.EAAuthError("invalid_token", SESSION_NOT_ACTIVE)
        except account_services.EAAuthError as exc:
            await self._refuse(AuthStatus[exc.code.upper()], exc.message, hello.account_id)
            return
        await self._start_session(claims, None, ea_version=hello.ea_version)  # the claim checks the session

    async def _authenticate_api_key(self, account_id, api_key: str, *, ea_version: str, send_result=True) -> None:
        try:
            tokens = await in_thread(account_services.ea_authenticate)(
                account_id=account_id, api_key=api_key, remote_addr=self._remote_addr()
            )
            claims = account_services.ea_access_verify(token=tokens.access)
        except account_services.EAAuthError as exc:
            await self._refuse(AuthStatus[exc.code.upper()], exc.message, account_id, send_result=send_result)
            return
        await self._start_session(claims, tokens, ea_version=ea_version, send_result=send_result)

    async def _start_session(self, claims, tokens, *, ea_version: str, send_result: bool = True) -> None:
        """Claim the account's one live session (any process: decision 0017), ask the process that held it to close
        it, and only then answer OK: a signal made after AUTH_RESULT reaches this socket alone."""
        self.claims = claims
        self.legacy = not send_result
        account_id = str(claims.account_id)
        await hub.start()  # this process can be asked to close the session before it claims it
        claim = await in_thread(connection_services.ea_session_claim)(
            tenant_id=claims.tenant_id, account_id=claims.account_id, session_id=claims.session_id, node=NODE,
            ea_version=ea_version,
        )  # fmt: skip
        if claim is None:  # ended, its key revoked, or its account or tenant disabled: nothing was changed
            await self._refuse(AuthStatus.INVALID_TOKEN, SESSION_NOT_ACTIVE, account_id, send_result=send_result)
            return
        self.epoch = claim.epoch
        if claim.previous_node and claim.previous_node != NODE:  # on this process, register() replaces it
            await hub.take_over(node=claim.previous_node, account_id=account_id, epoch=claim.epoch)
        self.authenticated = True
        if not self.legacy:
            await self._send_message(
                binproto.AuthResult(
                    status=AuthStatus.OK, session_id=claims.session_id,
                    access_expires_us=int(claims.expires_at.timestamp() * 1e6), server_time_us=_now_us(),
                    access_token=tokens.access if tokens else "", refresh_token=tokens.refresh if tokens else "",
                    reason="",
                )
            )  # fmt: skip
        for replaced in await hub.register(account_id, self):  # an older one here, or this one if already older
            await replaced.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
        if self.closing:
            return
        session_watch().add(self)  # before the resync: one that fails must not leave a revoked key's socket open
        if self.legacy:  # a legacy v1 EA is sent nothing
            return
        await outbound_batch.outbound_flush()  # ACKs received so far committed: what they answered is not resent
        resync = await in_thread(connection_services.ea_resync)(
            tenant_id=claims.tenant_id, account_id=claims.account_id
        )
        self.v1_symbols.update(resync.v1_symbol_overrides)
        for message in resync.messages:
            await self._send_outbound(message)

    async def _price_stream(self, message: binproto.PriceStream) -> None:
        rows = [(self.symbol_table.get(t.symbol) if message.version == binproto.V2 else self.v1_symbols.get(t.symbol),
                 t.bid, t.ask, t.spread_points, t.quote_quality, t.tradeable, t.market_session, t.server_id)
                for t in message.ticks]  # fmt: skip
        if any(row[0] is None for row in rows):
            await self._protocol_error(ErrorCode.UNKNOWN_SYMBOL, "tick for a symbol not in the symbol table")
            return
        self._ingest_ticks(message.timestamp_us, rows)

    def _ingest_v1_ticks(self, timestamp_us: int, records: list[tuple]) -> None:
        """The legacy packet's wire records → TickRows in one pass: named by the account's v1 id table (ids it lacks,
        such as the EA's 255, carry no usable quote and give no row), prices scaled from fixed point; a zero price
        is refused as in _ingest_ticks (a v1 price cannot exceed MAX_PRICE)."""
        names, scale = self.v1_symbols, binproto.V1_PRICE_SCALE
        time_us, trusted = binproto.resolve_timestamp(timestamp_us, _now_us())
        tenant, account = str(self.claims.tenant_id), str(self.claims.account_id)
        rows = [TickRow(time_us, tenant, account, names[sid], bid / scale, ask / scale, spread, 0, True, "unknown",
                        trusted)
                for sid, bid, ask, spread, _server in records if bid and ask and sid in names]  # fmt: skip
        if len(rows) != len(records) and not self.legacy and not all(bid and ask for _, bid, ask, _, _ in records):
            error = binproto.Error(code=ErrorCode.MALFORMED_FRAME, reason=TICK_PRICE_OUT_OF_RANGE)
            self._spawn(self._send_message(error))
        if rows:
            batcher("quotes").add(rows)

    def _ingest_ticks(self, timestamp_us: int, rows: list[tuple]) -> None:
        valid = [row for row in rows if 0 < row[1] <= MAX_PRICE and 0 < row[2] <= MAX_PRICE]
        if len(valid) != len(rows) and not self.legacy:  # said, not counted as garbage: a feed can quote zeros
            error = binproto.Error(code=ErrorCode.MALFORMED_FRAME, reason=TICK_PRICE_OUT_OF_RANGE)
            self._spawn(self._send_message(error))
        rows = valid
        if not rows:
            return
        time_us, trusted = binproto.resolve_timestamp(timestamp_us, _now_us())
        tenant, account = str(self.claims.tenant_id), str(self.claims.account_id)
        batcher("quotes").add(
            [TickRow(time_us, tenant, account, symbol, bid, ask, spread, quality, bool(tradeable),
                     SESSION_NAMES[session], trusted)
             for symbol, bid, ask, spread, quality, tradeable, session, _server in rows]
        )  # fmt: skip

    async def _symbol_table(self, message: binproto.SymbolTable) -> None:
        self.symbol_table.update({entry.index: entry.name for entry in message.symbols})

    async def _profile(self, message: binproto.AccountProfile) -> None:
        if not await in_thread(profile_update)(
            tenant_id=self.claims.tenant_id, account_id=self.claims.account_id, profile=message, epoch=self.epoch
        ):  # a newer session holds the account
            await self.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)

    async def _finance(self, m: binproto.AccountFinance) -> None:
        time_us, _trusted = binproto.resolve_timestamp(m.timestamp_us, _now_us())
        batcher("balances").add(
            [BalanceRow(time_us, str(self.claims.tenant_id), str(self.claims.account_id), m.balance, m.equity,
                        m.margin, m.margin_free, m.margin_level, m.floating_pnl, m.open_positions, m.pending_orders,
                        m.daily_pnl, m.drawdown_pct, m.max_balance)]
        )  # fmt: skip

    async def _heartbeat(self, m: binproto.Heartbeat) -> None:
        time_us, _trusted = binproto.resolve_timestamp(m.timestamp_us, _now_us())
        status = (
            "online" if m.connection_status == binproto.ConnectionStatus.ONLINE else m.connection_status.name.lower()
        )
        batcher("heartbeats").add(
            [HeartbeatRow(time_us, str(self.claims.tenant_id), str(self.claims.account_id),
                          str(self.claims.session_id), status, m.latency_ms, m.uptime_s, m.mt5_build,
                          m.terminal_connected, m.trade_allowed, m.error_count, m.last_error_code,
                          m.last_error_message)]
        )  # fmt: skip

    async def _positions(self, message: binproto.Positions) -> None:
        await in_thread(positions_cache_write)(account_id=self.claims.account_id, positions=message)

    async def _trade_event(self, event) -> None:
        if event.signal_id is not None:  # its SENT mark and ACK first: the execution's latency reads sent_to_ea_at
            await outbound_batch.outbound_flush()
        try:
            result = await in_thread(trade_event_record)(
                tenant_id=self.claims.tenant_id, account_id=self.claims.account_id, session_id=self.claims.session_id,
                event=event, epoch=self.epoch,
            )  # fmt: skip
        except DataError:  # a value the columns cannot hold: it never will, so REJECTED ends the EA's retries
            log.warning("trade event rejected: %s", binproto.to_json(event), exc_info=True, extra=self._log_context())
            status = binproto.EventAckStatus.REJECTED
        else:
            if result.status == REPLACED:  # a newer session holds the account; its process may not know it yet
                await self.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
                return
            accepted = result.status == "accepted"
            status = binproto.EventAckStatus.ACCEPTED if accepted else binproto.EventAckStatus.DUPLICATE
        await self._send_message(
            binproto.EventAck(event_type=event.TYPE, event_seq=event.event_seq, ticket=event.ticket, status=status)
        )

    async def _ack(self, ack: binproto.Ack) -> None:
        if ack.ref_id is None:
            return
        self.unacked.pop(ack.ref_id, None)
        outbound_batch.ack_add(tenant_id=self.claims.tenant_id, ack=ack, account_id=self.claims.account_id,
                               epoch=self.epoch)  # fmt: skip

    async def _token_refresh(self, message: binproto.TokenRefresh) -> None:
        try:
            tokens = await in_thread(account_services.ea_token_refresh)(refresh_token=message.refresh_token)
            claims = account_services.ea_access_verify(token=tokens.access)
            if claims.session_id != self.claims.session_id:
                raise account_services.EAAuthError("invalid_token", "refresh token of another session")
        except account_services.EAAuthError as exc:
            await self._send_message(self._auth_result(AuthStatus[exc.code.upper()], exc.message))
            await self.close_with(CloseCode.SESSION_EXPIRED, "refresh refused; reconnect with the API key")
            return
        self.claims = claims
        await self._send_message(
            binproto.AuthResult(
                status=AuthStatus.OK, session_id=claims.session_id,
                access_expires_us=int(claims.expires_at.timestamp() * 1e6), server_time_us=_now_us(),
                access_token=tokens.access, refresh_token=tokens.refresh, reason="",
            )
        )  # fmt: skip

    # --- outbound ------------------------------------------------------------------------------------------------

    def deliver_json(self, data: bytes) -> None:
        """Called on this connection's loop by the delivery hub for each NATS message addressed to its account."""
        if self.closing or self.legacy:
            return
        try:
            message = binproto.from_json(data.decode())
        except (binproto.ProtocolError, UnicodeDecodeError):
            log.error("undeliverable outbound payload", extra=self._log_context())
            return
        self._spawn(self._send_outbound(message))

    def resync_outbound(self) -> None:
        """Called on this connection's loop by the delivery hub after NATS reconnected."""
        if not self.closing and not self.legacy and self.authenticated:
            self._spawn(self._resync_outbound())

    async def _resync_outbound(self) -> None:
        await outbound_batch.outbound_flush()
        resync = await in_thread(connection_services.ea_resync)(
            tenant_id=self.claims.tenant_id, account_id=self.claims.account_id
        )
        for message in resync.messages:
            ref_id = getattr(message, "signal_id", None) or getattr(message, "command_id", None)
            self.unacked.pop(ref_id, None)  # a resend of something already waiting is not a second unacked item
            await self._send_outbound(message)

    async def _send_outbound(self, message) -> None:
        if isinstance(message, binproto.TradingSignal) and message.valid_until_us <= _now_us():
            return  # never deliver an expired signal
        try:
            frame = binproto.encode(message)
        except binproto.ProtocolError:  # our own data breaks a protocol limit: log it, never blame the EA for it
            log.exception("%s not sent: it does not fit the protocol", message.TYPE.name, extra=self._log_context())
            return
        ref_id = getattr(message, "signal_id", None) or getattr(message, "command_id", None)
        if ref_id is not None:
            if ref_id in self.unacked:  # already on this socket: the resync and the live delivery of one item raced
                return
            if len(self.unacked) >= MAX_UNACKED_OUTBOUND:
                await self.close_with(CloseCode.SLOW_CONSUMER, "too many unacknowledged server messages")
                return
            self.unacked[ref_id] = time.monotonic()
        await self._send_frame(frame)
        if isinstance(message, binproto.TradingSignal) and not self.closing:
            outbound_batch.signal_sent_add(tenant_id=self.claims.tenant_id, signal_id=message.signal_id,
                                           account_id=self.claims.account_id, epoch=self.epoch)  # fmt: skip

    async def _send_message(self, message) -> None:
        await self._send_frame(binproto.encode(message))

    async def _send_frame(self, frame: bytes) -> None:
        if not self.closing:
            await self.send(bytes_data=frame)

    async def close_with(self, code: CloseCode, reason: str, *, notify: bool = True, retry_after_ms: int = 0) -> None:
        """Say why (SESSION_CLOSING; never to a legacy v1 EA, which only understands the close frame), then close."""
        if self.closing:
            return
        if notify and not self.legacy:
            closing = binproto.SessionClosing(close_code=code, retry_after_ms=retry_after_ms, reason=reason[:200])
            await self._send_message(closing)
        self.closing = True
        await self.close(code=int(code))

    # --- limits and checks ---------------------------------------------------------------------------------------

    async def _protocol_error(self, code: ErrorCode, reason: str) -> None:
        """Answer ERROR (never to a legacy v1 EA); the 10th of the EA's own bad frames within a minute closes."""
        if not self.legacy:
            await self._send_message(binproto.Error(code=code, reason=reason[:250]))
        if code not in COUNTED_ERRORS:
            return
        now = time.monotonic()
        self.errors.append(now)
        while self.errors[0] < now - ERROR_WINDOW_S:
            self.errors.popleft()
        if len(self.errors) >= MAX_ERRORS:
            await self.close_with(CloseCode.PROTOCOL_VIOLATION, "too many malformed frames")

    def _auth_result(self, status: AuthStatus, reason: str) -> binproto.AuthResult:
        return binproto.AuthResult(status=status, session_id=None, access_expires_us=0, server_time_us=_now_us(),
                                   access_token="", refresh_token="", reason=reason[:250])  # fmt: skip

    async def _refuse(
        self, status: AuthStatus, reason: str, account_id, *, send_result: bool = True, retry_after_ms: int = 0
    ) -> None:
        if send_result:
            await self._send_message(self._auth_result(status, reason))
        if status in (AuthStatus.UNSUPPORTED_VERSION, AuthStatus.CLOCK_SKEW):
            await in_thread(account_services.ea_refusal_record)(account_id=account_id, reason=status.name.lower())
        code = REFUSAL_CLOSE_CODES.get(status, CloseCode.AUTH_FAILED)
        await self.close_with(
            code, f"authentication refused: {status.name.lower()}", notify=send_result, retry_after_ms=retry_after_ms
        )

    async def _held_after_rate_limit(self, account_id, *, send_result: bool = True) -> bool:
        """Refuse (RATE_LIMITED, 4008) a reconnect within RATE_LIMIT_RETRY_AFTER_S of a 4008 close, before the key
        is checked: a flooding EA that reconnects at once costs no Argon2 hash."""
        left_s = await in_thread(connection_services.ea_rate_limit_hold_left_s)(account_id=account_id)
        if left_s:
            reason = f"rate limited: reconnect in {left_s} s"
            await self._refuse(AuthStatus.RATE_LIMITED, reason, account_id, send_result=send_result,
                               retry_after_ms=left_s * 1000)  # fmt: skip
        return bool(left_s)

    async def _hello_deadline(self) -> None:
        await asyncio.sleep(HELLO_TIMEOUT_S)
        if not self.authenticated:
            await self.close_with(CloseCode.AUTH_FAILED, "no HELLO within the time limit")

    def _remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def _log_context(self) -> dict:
        if self.claims is None:
            return {}
        return {"account_id": self.claims.account_id, "session_id": self.claims.session_id}
