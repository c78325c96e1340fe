"""The EA WebSocket (`/ws/ea/`): Suho Binary Protocol in binary frames, its JSON form in text frames.

The consumer is an I/O shell over trading/session.py's `GatewaySession`, which holds the connection's state and
limits and decides every answer (sans I/O, unit-tested without a socket or a database); the consumer performs the
actions it returns, one service call per message kind, and never lets an exception escape. Authentication is the
first frame (HELLO, with an API key or an access token); the tenant comes from the verified credentials only.
Close codes: binproto.CloseCode (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DataError

import binproto
from accounts import services as account_services
from binproto import AuthStatus, CloseCode
from suho.asyncdb import db_thread
from suho.clock import now_us
from suho.drain import DRAIN_REASON, drain_retry_after_ms, draining
from trading import connection as connection_services
from trading import outbound_batch
from trading.connection import SESSION_NOT_ACTIVE
from trading.gateway import (
    NODE,
    SESSION_REPLACED_REASON,
    disconnects,
    hub,
    resync_reads,
    token_hellos,
    volume_add,
)
from trading.ingest import REPLACED, positions_cache_write, profile_update, trade_event_record
from trading.session import (
    MAX_ERRORS,
    MAX_UNACKED_OUTBOUND,
    Action,
    Authenticate,
    Batch,
    Close,
    GatewaySession,
    MarkSignalSent,
    RecordAck,
    RecordRefusal,
    RecordTradeEvent,
    RefreshToken,
    Send,
    UpdateProfile,
    WritePositions,
)
from trading.session import TICK_PRICE_OUT_OF_RANGE as TICK_PRICE_OUT_OF_RANGE  # re-exported for the gateway tests
from trading.session_watch import session_watch

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10


def in_thread(func):
    """Run blocking work (database, Argon2) in the thread pool, not Channels' single shared thread: one slow
    HELLO must not hold up every other connection's trade events."""
    return db_thread(func)


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
    """The I/O shell over trading/session.py's GatewaySession: frames in, the session's actions out (sends, closes,
    batched rows, one service call per message kind). Every protocol decision is the session's."""

    # No channel layer: outbound messages come from NATS through the delivery hub, and a layer would cost every
    # connection a Redis receive loop (and channels-redis drops messages at capacity).
    channel_layer_alias = "ea-gateway-uses-nats"

    async def __call__(self, scope, receive, send) -> None:
        """Channels' AsyncConsumer.__call__ for a consumer without a channel layer (`channel_layer_alias` names
        none): it waits for each message with a new task and `asyncio.wait` (await_many_dispatch, made for two
        sources), a cost per tick frame; with one source, awaiting `receive()` is the same order of messages
        without it. One loop turn per message, as before: a backlog on one connection (up to suho.server's inbound
        bound) does not hold the others and the live publisher for its whole length."""
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
                await asyncio.sleep(0)
        except StopConsumer:
            pass

    async def dispatch(self, message) -> None:
        """Channels' dispatch hops to a thread to close stale database connections before every message; this
        consumer never touches the database on the event loop (its database work runs in `in_thread`, which does
        that clean-up itself), so one hop per tick frame is pure overhead (~20 % of the loop at 24k ticks/s)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # what the delivery hub and the session watch read of a connection
    @property
    def closing(self) -> bool:
        return self.session.closing

    @property
    def claims(self):
        return self.session.claims

    @property
    def epoch(self) -> int:
        return self.session.epoch

    async def connect(self) -> None:
        # the limits are read from this module's names when a connection opens (a test lowers them here)
        self.session = GatewaySession(max_errors=MAX_ERRORS, max_unacked=MAX_UNACKED_OUTBOUND)
        self.tasks: set[asyncio.Task] = set()
        await self.accept()
        if draining():  # the balancer has not noticed yet: send this EA to another process
            await self.ea_drain({"type": "ea.drain"})
            return
        handshake = _handshake_credentials(self.scope)
        if handshake is not None:  # a legacy v1 EA: authenticated in the handshake, never sends HELLO
            account_id, api_key = handshake
            await self._perform(self.session.handshake(account_id=account_id, api_key=api_key))
            return
        self._spawn(self._hello_deadline())

    def _spawn(self, coroutine) -> None:
        """Run a connection-scoped task; it is forgotten when done and cancelled on disconnect."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def disconnect(self, code) -> None:
        self.session.disconnected()
        for task in list(self.tasks):
            task.cancel()
        if self.session.started:
            hub.unregister(str(self.claims.account_id), self)
            session_watch().discard(self)
            try:
                if code == CloseCode.RATE_LIMITED:  # suho.server closed it on arrival: hold its reconnects
                    await in_thread(connection_services.ea_rate_limit_hold)(account_id=self.claims.account_id)
                await outbound_batch.outbound_flush()  # what this EA told us is committed before it reconnects
                await disconnects.ask(connection_services.Disconnected(  # with the others waiting: one round trip
                    tenant_id=self.claims.tenant_id, account_id=self.claims.account_id,
                    session_id=self.claims.session_id, close_code=code, epoch=self.epoch,
                ))  # fmt: skip
            except Exception:
                log.exception("disconnect bookkeeping failed", extra={"account_id": self.claims.account_id})

    async def ea_drain(self, message) -> None:
        """This process is shutting down (suho.server's drain queued this message behind the frames already read, so
        their trade events are recorded and acknowledged first): close with 1012 and a jittered reconnect delay."""
        await self.close_with(CloseCode.SERVICE_RESTART, DRAIN_REASON, retry_after_ms=drain_retry_after_ms())

    async def close_with(self, code: CloseCode, reason: str, *, retry_after_ms: int = 0) -> None:
        """Say why (SESSION_CLOSING; never to a legacy v1 EA, which only understands the close frame), then close."""
        await self._perform(self.session.close(code, reason, retry_after_ms=retry_after_ms))

    # --- inbound -------------------------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            if bytes_data is not None:
                await self._perform(self.session.receive_bytes(bytes_data, now_us=now_us()))
            elif text_data is not None:
                await self._perform(self.session.receive_text(text_data, now_us=now_us()))
        except binproto.ProtocolError as exc:
            await self._perform(self.session.protocol_error(exc.code, str(exc), now_us=now_us()))
        except Exception:
            log.exception("EA message failed", extra=self.session.log_context())
            await self._perform(self.session.internal_error())

    async def _perform(self, actions: list[Action]) -> None:
        """Carry out the session's actions in order. A Send is dropped once the session closes (another task may
        have closed it while this one awaited); a Close's own frames always go out."""
        for action in actions:
            kind = type(action)
            if kind is Batch:
                volume_add(action.kind, action.rows)
            elif kind is Send:
                if not self.session.closing:
                    await self.send(bytes_data=action.frame)
            elif kind is Close:
                for frame in action.frames:
                    await self.send(bytes_data=frame)
                await self.close(code=int(action.code))
            elif kind is MarkSignalSent:
                if not self.session.closing:
                    outbound_batch.signal_sent_add(tenant_id=self.claims.tenant_id, signal_id=action.signal_id,
                                                   account_id=self.claims.account_id, epoch=self.epoch)  # fmt: skip
            elif kind is RecordAck:
                outbound_batch.ack_add(tenant_id=self.claims.tenant_id, ack=action.ack,
                                       account_id=self.claims.account_id, epoch=self.epoch)  # fmt: skip
            elif kind is RecordTradeEvent:
                await self._trade_event(action.event)
            elif kind is UpdateProfile:
                await self._profile(action.profile)
            elif kind is WritePositions:
                await in_thread(positions_cache_write)(account_id=self.claims.account_id, positions=action.positions)
            elif kind is RecordRefusal:
                await in_thread(account_services.ea_refusal_record)(account_id=action.account_id, reason=action.reason)
            elif kind is Authenticate:
                await self._authenticate(action)
            elif kind is RefreshToken:
                await self._token_refresh(action.refresh_token)
            else:
                raise AssertionError(f"unknown action {action!r}")

    async def _authenticate(self, action: Authenticate) -> None:
        if action.method == binproto.AuthMethod.API_KEY:
            if not await self._held_after_rate_limit(action.account_id):
                await self._authenticate_api_key(action.account_id, action.credential, ea_version=action.ea_version)
            return
        await hub.start()  # this process can be asked to close the session before it claims it
        hello = await token_hellos.ask(connection_services.HelloAsked(  # with the others waiting: one round trip
            account_id=action.account_id, token=action.credential, ea_version=action.ea_version
        ))  # fmt: skip
        if hello.held_s:
            await self._refuse_held(action.account_id, hello.held_s)
        elif hello.refusal is not None:
            await self._refuse(AuthStatus[hello.refusal.code.upper()], hello.refusal.message, action.account_id)
        else:
            await self._start_session(hello.claims, None, hello.claim)

    async def _authenticate_api_key(self, account_id, api_key: str, *, ea_version: str) -> None:
        try:
            tokens = await in_thread(account_services.ea_authenticate)(
                account_id=account_id, api_key=api_key, remote_addr=self._remote_addr()
            )
            claims = account_services.ea_access_verify(token=tokens.access)
        except account_services.EAAuthError as exc:
            await self._refuse(AuthStatus[exc.code.upper()], exc.message, account_id)
            return
        await hub.start()  # this process can be asked to close the session before it claims it
        claim = await in_thread(connection_services.ea_session_claim)(
            tenant_id=claims.tenant_id, account_id=claims.account_id, session_id=claims.session_id, node=NODE,
            ea_version=ea_version,
        )  # fmt: skip
        await self._start_session(claims, tokens, claim)

    async def _start_session(self, claims, tokens, claim) -> None:
        """With the account's one live session claimed (any process: decision 0017; `ea_session_claim`, or
        `ea_token_hello` for a token HELLO), ask the process that held it to close it, and only then answer OK: a
        signal made after AUTH_RESULT reaches this socket alone."""
        account_id = str(claims.account_id)
        if claim is None:  # ended, its key revoked, or its account or tenant disabled: nothing was changed
            await self._refuse(AuthStatus.INVALID_TOKEN, SESSION_NOT_ACTIVE, account_id)
            return
        if claim.previous_node and claim.previous_node != NODE:  # on this process, register() replaces it
            await hub.take_over(node=claim.previous_node, account_id=account_id, epoch=claim.epoch)
        await self._perform(self.session.authenticated(claims=claims, tokens=tokens, epoch=claim.epoch,
                                                       now_us=now_us()))  # fmt: skip
        for replaced in await hub.register(account_id, self):  # an older one here, or this one if already older
            await replaced.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
        if self.session.closing:
            return
        session_watch().add(self)  # before the resync: one that fails must not leave a revoked key's socket open
        if self.session.legacy:  # a legacy v1 EA is sent nothing
            return
        self.session.resync_begin()
        try:
            await outbound_batch.outbound_flush()  # ACKs received so far committed: what they answered is not resent
            resync = await resync_reads.ask((claims.tenant_id, claims.account_id))
            self.session.resync_done(v1_symbol_overrides=resync.v1_symbol_overrides)
            for message in resync.messages:
                await self._perform(self.session.outbound(message, now_us=now_us()))
        finally:
            self.session.resync_end()

    async def _profile(self, profile: binproto.AccountProfile) -> None:
        if not await in_thread(profile_update)(
            tenant_id=self.claims.tenant_id, account_id=self.claims.account_id, profile=profile, epoch=self.epoch
        ):  # a newer session holds the account
            await self.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)

    async def _trade_event(self, event) -> None:
        if event.signal_id is not None:  # its SENT mark and ACK first: the execution's latency reads sent_to_ea_at
            await outbound_batch.outbound_flush()
        try:
            result = await in_thread(trade_event_record)(
                tenant_id=self.claims.tenant_id, account_id=self.claims.account_id, session_id=self.claims.session_id,
                event=event, epoch=self.epoch,
            )  # fmt: skip
        except DataError:  # a value the columns cannot hold: it never will, so REJECTED ends the EA's retries
            log.warning("trade event rejected: %s", binproto.to_json(event), exc_info=True,
                        extra=self.session.log_context())  # fmt: skip
            status = binproto.EventAckStatus.REJECTED
        else:
            if result.status == REPLACED:  # a newer session holds the account; its process may not know it yet
                await self.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
                return
            accepted = result.status == "accepted"
            status = binproto.EventAckStatus.ACCEPTED if accepted else binproto.EventAckStatus.DUPLICATE
        await self._perform(self.session.trade_event_recorded(event, status))

    async def _token_refresh(self, refresh_token: str) -> None:
        try:
            tokens = await in_thread(account_services.ea_token_refresh)(refresh_token=refresh_token)
            claims = account_services.ea_access_verify(token=tokens.access)
            if claims.session_id != self.claims.session_id:
                raise account_services.EAAuthError("invalid_token", "refresh token of another session")
        except account_services.EAAuthError as exc:
            status = AuthStatus[exc.code.upper()]
            await self._perform(self.session.token_refresh_refused(status, exc.message, now_us=now_us()))
            return
        await self._perform(self.session.token_refreshed(claims=claims, tokens=tokens, now_us=now_us()))

    async def _refuse(self, status: AuthStatus, reason: str, account_id, *, retry_after_ms: int = 0) -> None:
        actions = self.session.refuse(status, reason, account_id=account_id, now_us=now_us(),
                                      retry_after_ms=retry_after_ms)  # fmt: skip
        await self._perform(actions)

    async def _held_after_rate_limit(self, account_id) -> bool:
        """Refuse (RATE_LIMITED, 4008) a reconnect within RATE_LIMIT_RETRY_AFTER_S of a 4008 close, before the key
        is checked: a flooding EA that reconnects at once costs no Argon2 hash."""
        left_s = await in_thread(connection_services.ea_rate_limit_hold_left_s)(account_id=account_id)
        if left_s:
            await self._refuse_held(account_id, left_s)
        return bool(left_s)

    async def _refuse_held(self, account_id, left_s: int) -> None:
        reason = f"rate limited: reconnect in {left_s} s"
        await self._refuse(AuthStatus.RATE_LIMITED, reason, account_id, retry_after_ms=left_s * 1000)

    async def _hello_deadline(self) -> None:
        await asyncio.sleep(HELLO_TIMEOUT_S)
        await self._perform(self.session.hello_deadline())

    # --- outbound ------------------------------------------------------------------------------------------------

    def deliver_json(self, data: bytes) -> None:
        """Called on this connection's loop by the delivery hub for each NATS message addressed to its account."""
        if not self.session.takes_outbound:
            return
        try:
            message = binproto.from_json(data.decode())
        except (binproto.ProtocolError, UnicodeDecodeError):
            log.error("undeliverable outbound payload", extra=self.session.log_context())
            return
        self._spawn(self._send_outbound(message))

    def resync_outbound(self) -> None:
        """Called on this connection's loop by the delivery hub after NATS reconnected."""
        if self.session.takes_outbound:
            self._spawn(self._resync_outbound())

    async def _resync_outbound(self) -> None:
        self.session.resync_begin()
        try:
            await outbound_batch.outbound_flush()
            resync = await resync_reads.ask((self.claims.tenant_id, self.claims.account_id))
            for message in resync.messages:
                await self._perform(self.session.outbound(message, now_us=now_us(), resend=True))
        finally:
            self.session.resync_end()

    async def _send_outbound(self, message) -> None:
        await self._perform(self.session.outbound(message, now_us=now_us()))

    def _remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None
