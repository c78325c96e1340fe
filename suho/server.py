"""`python -m suho.server [daphne's options] suho.asgi:application`: daphne with limits where the bytes arrive.

daphne (4.x) hands the application every WebSocket message and every request body through queues without a bound.
An EA flooding trade events queued 1.3 M frames (+430 MB) before its consumer saw them, so the consumer's own rate
limit never fired; a 600 MB body was buffered (+400 MB) before Django refused it (issue 15, findings 3 and 4;
decision 0012). This module keeps daphne and adds, on the reactor side, before anything is queued:

- each EA frame is counted against its kind's token bucket (binproto.RATE_LIMITS, docs/protocol.md §9) on arrival;
  over the limit the connection is closed with 4008 (after SESSION_CLOSING, for an EA that sent HELLO);
- the frames a connection's consumer has not yet taken are bounded (INBOUND_MAX_FRAMES, INBOUND_MAX_BYTES): past
  that the socket is not read until the consumer has caught up, so TCP pushes back on the sender;
- a request body over HTTP_MAX_BODY_BYTES is answered 413 from its Content-Length, or as soon as a chunked body
  passes the limit, and what follows is read and dropped, never buffered.

A client's common frames (whole, unfragmented, masked text or binary) go from the read to `onMessage` without
autobahn's per-frame parser, which handles everything else as before (decision 0031). Keep-alive pings that fall due
together are spread over daphne's 2 s check instead of being sent in one turn of the event loop (decision 0042), and
connections opened together reach the end of their lifetime at moments spread over its last tenth (decision 0043).

Python's cyclic garbage collector is tuned for a long-lived process (`gc_tune`), and its pauses are counted on
/metrics (`suho_gc_pause_seconds`).

On SIGTERM the process drains before daphne cancels its applications (suho/drain.py, decision 0018): /readyz says
503, each EA connection is closed with 1012 after the frames it already read, and the process waits (at most
SHUTDOWN_DRAIN_S) for those connections' disconnect bookkeeping and the gateway's buffered rows to be written.
"""

import daphne.server  # isort:skip  (first: it installs the asyncio reactor before anything imports twisted)

import asyncio
import bisect
import gc
import json
import logging
import pprint
import random
import sys
import time
from collections import deque
from functools import partial
from itertools import accumulate

from autobahn.websocket.xormasker import create_xor_masker
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from prometheus_client import REGISTRY
from prometheus_client.core import HistogramMetricFamily
from twisted.internet import defer, reactor

import binproto
from binproto import CloseCode, MsgType
from suho.clock import now_us
from suho.drain import drain_hooks_run, drain_start

log = logging.getLogger(__name__)

INBOUND_MAX_FRAMES = 256  # frames read but not yet taken by the consumer: past this the socket is not read
INBOUND_MAX_BYTES = 2 * 1024 * 1024  # … or past this many bytes of them; reading resumes at half of both
BODY_LINGER_S = 5.0  # after a 413, the rest of the body is read and dropped this long, so the client sees the 413
BODY_TOO_LARGE = "request body over {limit} bytes"
RATE_LIMITED_REASON = "{kind} above {rate:g}/s (burst {burst})"
MAGIC_BYTES = binproto.HEADER.pack(binproto.MAGIC, 0, 0, 0, 0)[:4]
EA_PATH = b"/ws/ea/"  # the connections a drain closes (trading/routing.py); the portal's socket is cancelled as before
KIND_BY_NAME = {name: msg_type for msg_type, name in binproto.TYPE_NAMES.items()}
PING_SPREAD_S = 2.0  # daphne checks every connection's keep-alive ping this often (daphne.server.timeout_checker)
LIFETIME_SPREAD = 0.1  # a connection is closed between 90 % and 100 % of daphne's websocket_timeout (decision 0043)


def frame_kind(payload: bytes, is_binary: bool) -> MsgType | None:
    """The message kind a frame claims (header byte 6, or a text frame's "type"); None when it cannot be read or
    has no rate limit of its own (garbage, unknown and server types share RATE_LIMIT_OTHER)."""
    if is_binary:
        kind = payload[6] if len(payload) >= binproto.HEADER_SIZE and payload[:4] == MAGIC_BYTES else None
    else:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested too deep ("[" * 100_000), as binproto says
            return None
        name = data.get("type") if isinstance(data, dict) else None
        kind = KIND_BY_NAME.get(name) if isinstance(name, str) else None
    return MsgType(kind) if kind in binproto.RATE_LIMITS else None


class TokenBucket:
    """`rate` tokens a second up to `burst`; a frame takes one."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# A client's frame in the common case, taken whole from a read without autobahn's general parser: FIN set, no RSV
# bit, text (1) or binary (2), masked, a 7- or 16-bit length. Its first byte tells it (value: is it binary).
WHOLE_FRAME_FIRST_BYTES = {0x81: False, 0x82: True}
MASKED = 0x80
UNMASK_AS_INTEGER_MAX = 4096  # longer payloads go through autobahn's native masker, faster per byte


def unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3: the payload XOR its 4-byte masking key repeated, as one integer operation (~1.6 µs for a
    144-byte tick frame here, against ~5 µs for autobahn's per-frame cffi masker)."""
    size = len(payload)
    key = (mask * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def whole_frames(data: bytes, max_payload: int):
    """The complete, unfragmented, masked text and binary frames at the start of `data`, each as (payload unmasked,
    is_binary, offset after it), up to the first frame that is anything else: incomplete, a control frame, a
    fragment, an extension's, unmasked, with a 64-bit or non-minimal length, over `max_payload` (0: no limit), or
    text that is not UTF-8. That frame and what follows are left to autobahn's parser, which refuses what is wrong."""
    at, end = 0, len(data)
    while end - at >= 6:
        is_binary = WHOLE_FRAME_FIRST_BYTES.get(data[at])
        length = data[at + 1] - MASKED  # negative: not masked
        if is_binary is None or length < 0 or length == 127:
            return
        start = at + 6
        if length == 126:
            if end - at < 8:
                return
            length, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 8
            if length < 126:
                return
        if start + length > end or 0 < max_payload < length:
            return
        body, mask = data[start : start + length], data[start - 4 : start]
        if length <= UNMASK_AS_INTEGER_MAX:
            payload = unmask(body, mask)
        else:
            payload = create_xor_masker(mask, length).process(body)
        if not is_binary:
            try:
                payload.decode()
            except UnicodeDecodeError:
                return
        at = start + length
        yield payload, is_binary, at


class EAWebSocketProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, with per-kind rate limits and a bounded inbound queue (module docstring)."""

    lifetime_end = None  # the close onOpen scheduled (a class default: onClose comes also for a failed handshake)

    def _dataReceived(self, data: bytes) -> None:
        """autobahn parses a frame in ~20 Python calls (header, then payload, through five message callbacks) and
        fires an observer event per message. A read that starts at a frame boundary on an open connection hands its
        whole common frames (`whole_frames`) to `onMessage` as autobahn would after its checks, with its counters
        kept, and leaves the rest, from the first frame that is anything else, to autobahn's parser (issue 21)."""
        if (
            self.state != self.STATE_OPEN
            or self.data
            or self.current_frame is not None
            or self.inside_message
            or self._perMessageCompress is not None
            or not self.applyMask
            or self.logOctets
            or self.logFrames
            or self.trackedTimings
        ):
            super()._dataReceived(data)
            return
        stats, taken = self.trafficStats, 0
        stats.incomingOctetsWireLevel += len(data)
        for payload, is_binary, frame_end in whole_frames(data, self.whole_frame_limit):
            taken = frame_end
            stats.incomingOctetsWebSocketLevel += len(payload)
            stats.incomingOctetsAppLevel += len(payload)
            stats.incomingWebSocketFrames += 1
            stats.incomingWebSocketMessages += 1
            if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                self._cancelAutoPingTimeoutCall()
            self.onMessage(payload, is_binary)
            if self.state != self.STATE_OPEN:  # closed by onMessage (a rate limit): autobahn takes the rest
                break
        if taken < len(data):
            self.data = data[taken:]
            self.consumeData()

    def check_timeouts(self):
        """daphne's, except that a keep-alive ping that falls due goes out at a random moment within the next
        PING_SPREAD_S rather than at once. daphne checks all connections together every 2 s and pings each that sent
        no message for its ping interval (20 s), so connections that went quiet together (opened in one reconnect
        storm, or answering one broadcast) were all pinged in one turn of the event loop, and their pongs read in the
        next: up to ~60 ms with 1,000 EAs in which no signal went out (decision 0042).

        No ping goes out while one is unanswered: autobahn starts a pong timeout per ping and can cancel only the
        last one, so the late pong of an earlier ping (daphne pinged every 20 s regardless) was ignored and the
        connection dropped at that ping's timeout although it had answered."""
        if self.state == self.STATE_OPEN and time.time() - self.last_ping > self.server.ping_interval:
            self.last_ping = time.time()  # not due for daphne's check below
            if self.ping_scheduled is None and self.autoPingTimeoutCall is None:  # one ping in flight at a time
                self.ping_scheduled = reactor.callLater(random.uniform(0, PING_SPREAD_S), self._ping_when_open)
        super().check_timeouts()

    def onOpen(self):
        """Schedules the connection's close at a random point of the last LIFETIME_SPREAD of daphne's lifetime
        (`websocket_timeout`, 24 h), counted from the handshake as daphne counts it. daphne closes a connection in
        its 2 s check once that lifetime is over, so the EAs of one reconnect storm were closed in the same few
        seconds a day later, in bursts of one check each, and reconnected together: the storm came back every day
        (decision 0043). daphne's own check stays; it comes later unless the event loop is late by more than
        the rest of the lifetime, and closes the same way."""
        super().onOpen()
        timeout = self.server.websocket_timeout
        if timeout >= 0:
            closes_at = self.socket_opened + timeout * random.uniform(1 - LIFETIME_SPREAD, 1)
            self.lifetime_end = reactor.callLater(max(0.0, closes_at - time.time()), self._close_at_lifetime_end)

    def _close_at_lifetime_end(self) -> None:
        self.lifetime_end = None
        if self.state == self.STATE_OPEN:
            self.serverClose()

    def _ping_when_open(self) -> None:
        self.ping_scheduled = None
        if self.state == self.STATE_OPEN:
            self._sendAutoPing()

    def onConnect(self, request):
        self.buckets: dict[MsgType | None, TokenBucket] = {}
        self.pending_sizes: deque[int] = deque()  # sizes of the frames queued for the consumer, oldest first
        self.pending_bytes = 0
        self.reading_paused = False
        self.ping_scheduled = None  # the keep-alive ping check_timeouts scheduled, until it goes out
        self.hello_seen = False  # a v2 EA: it is told why it is closed; a legacy v1 EA only gets the close frame
        self.limit_close_code: int | None = None
        limits = [size for size in (self.maxFramePayloadSize, self.maxMessagePayloadSize) if size > 0]
        self.whole_frame_limit = min(limits, default=0)  # a frame over it goes to autobahn, which refuses it
        return super().onConnect(request)

    def onMessage(self, payload, isBinary):
        if self.limit_close_code is not None:
            return  # closing: drop what still arrives
        kind = frame_kind(payload, isBinary)
        self.hello_seen = self.hello_seen or kind == MsgType.HELLO
        bucket = self.buckets.get(kind)
        if bucket is None:
            rate, burst = binproto.RATE_LIMITS.get(kind, binproto.RATE_LIMIT_OTHER)
            bucket = self.buckets[kind] = TokenBucket(rate, burst, time.monotonic())
        if not bucket.take(time.monotonic()):
            self._close_rate_limited(kind, bucket)
            return
        self.pending_sizes.append(len(payload))
        self.pending_bytes += len(payload)
        super().onMessage(payload, isBinary)
        if not self.reading_paused and (
            len(self.pending_sizes) >= INBOUND_MAX_FRAMES or self.pending_bytes >= INBOUND_MAX_BYTES
        ):
            self.reading_paused = True
            self.transport.pauseProducing()

    def message_taken(self, message: dict) -> None:
        """The consumer took `message` off its queue (InboundQueue): resume reading once it has caught up."""
        if message.get("type") != "websocket.receive" or not self.pending_sizes:
            return
        self.pending_bytes -= self.pending_sizes.popleft()
        if (
            self.reading_paused
            and len(self.pending_sizes) <= INBOUND_MAX_FRAMES // 2
            and self.pending_bytes <= INBOUND_MAX_BYTES // 2
        ):
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resumeProducing()

    def _close_rate_limited(self, kind: MsgType | None, bucket: TokenBucket) -> None:
        reason = RATE_LIMITED_REASON.format(
            kind=kind.name if kind is not None else "unrecognised frames", rate=bucket.rate, burst=bucket.burst
        )
        self.limit_close_code = int(CloseCode.RATE_LIMITED)
        log.warning("EA connection closed: %s", reason, extra={"client": self.client_addr})
        if self.hello_seen:
            closing = binproto.SessionClosing(
                close_code=CloseCode.RATE_LIMITED, retry_after_ms=binproto.RATE_LIMIT_RETRY_AFTER_S * 1000,
                reason=reason, timestamp_us=now_us(),
            )  # fmt: skip
            self.sendMessage(binproto.encode(closing), isBinary=True)
        self.sendClose(code=self.limit_close_code, reason=reason)
        self._resume_reading()  # the peer's close frame must still be read
        queue = getattr(self, "application_queue", None)
        while queue is not None and not queue.empty():  # frames the consumer has not started on are dropped
            queue.get_nowait()

    def serverSend(self, content, binary=False):
        if self.limit_close_code is None:  # once closed for its rate, the consumer's answers are dropped
            super().serverSend(content, binary)

    def serverClose(self, code=None):
        """autobahn's sendClose accepts only 1000 and 3000-4999 from an application; 1012 (Service Restart, the
        drain's code: suho/drain.py) is a registered code a server may send, so it goes out as a close frame as is."""
        if code == CloseCode.SERVICE_RESTART:
            self.sendCloseFrame(code=int(code), isReply=False)
            return
        super().serverClose(code)

    def onClose(self, wasClean, code, reason):
        """The consumer learns the code this side closed with (4008), not whatever the peer echoed. A lifetime close
        still scheduled is cancelled: it would hold the protocol for up to a day."""
        if self.lifetime_end is not None:
            self.lifetime_end.cancel()
            self.lifetime_end = None
        super().onClose(wasClean, self.limit_close_code or code, reason)


class EAWebSocketFactory(WebSocketFactory):
    protocol = EAWebSocketProtocol


class BoundedRequest(WebRequest):
    """A request whose body is answered 413 once it is known to exceed HTTP_MAX_BODY_BYTES, and never buffered."""

    body_refused = False
    body_bytes = 0
    linger = None

    def __init__(self, channel, *args, **kwargs):
        # Twisted parses a form's or multipart body into `args` before the application is called, and daphne never
        # reads them (Django parses the body itself): a second parse of each form POST on the event loop, and each
        # POST's Content-Type through the email package, which makes a new class per call (~1 % of a signal POST's
        # CPU, and garbage for the cyclic collector; issue 21).
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)

    @staticmethod
    def max_body_bytes() -> int:
        from django.conf import settings  # configured by the application's import, before any request

        return settings.HTTP_MAX_BODY_BYTES

    def gotLength(self, length):
        if length is not None and length > self.max_body_bytes():
            self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" for a body that is refused
            self._refuse_body(length)
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.body_refused:
            return
        self.body_bytes += len(data)
        if self.body_bytes > self.max_body_bytes():
            self._refuse_body(None)
            return
        super().handleContentChunk(data)

    def _refuse_body(self, length: int | None) -> None:
        limit = self.max_body_bytes()
        self.body_refused = True
        self.content.close() if self.content is not None else None
        self.content = None
        body = json.dumps({"error": {"code": "too_large", "message": BODY_TOO_LARGE.format(limit=limit)}}).encode()
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        log.warning("request body refused: %s bytes, limit %s", length or f"over {limit}", limit,
                    extra={"client": getattr(self.client, "host", None)})  # fmt: skip
        self.linger = reactor.callLater(BODY_LINGER_S, transport.abortConnection)

    def process(self):
        if self.body_refused:  # the whole (dropped) body arrived: nothing left to read
            self.channel.transport.loseConnection()
            return None
        return super().process()

    def connectionLost(self, reason):
        if self.linger is not None and self.linger.active():
            self.linger.cancel()
        return super().connectionLost(reason)


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol


class InboundQueue(asyncio.Queue):
    """An application's input queue that tells its protocol when a message is taken off (to resume reading)."""

    def __init__(self, on_take) -> None:
        super().__init__()
        self.on_take = on_take

    def _get(self):
        message = super()._get()
        if self.on_take is not None:
            self.on_take(message)
        return message


# CPython's cyclic GC runs a full collection after every 10th collection of the middle generation; a full one walks
# every object: the ~140,000 Django and the libraries make at start, and ~200 per connected EA. With 1,000 EAs
# connected those pauses were the p99 of the signal POST (66 ms, against 19 ms with the collector off; measured with
# `bench.run --only delivery`, commit e70005a) and of a tick's live publish. What is loaded at start lives as long
# as the process, so it is frozen out of the collector (after one collection, so no start-up garbage is frozen),
# and a full collection waits for 1,000 middle ones (minutes under load, and CPython still skips it until a quarter
# of the old objects are new): garbage that reached the oldest generation, a closed connection's, waits for it that
# long. The young generations keep CPython's thresholds, so each of their collections stays short (a gen-0
# threshold of 50,000 made each one a 20 ms pause).
FULL_COLLECTION_AFTER = 1_000


def gc_tune() -> None:
    gc.collect()
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
    if GC_PAUSES not in gc.callbacks:
        gc.callbacks.append(GC_PAUSES)
        REGISTRY.register(GC_PAUSES)


GC_PAUSE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class GcPauses:
    """Each run of CPython's cyclic collector, per generation, as `suho_gc_pause_seconds` on /metrics: a run holds
    the GIL, so every thread of the process waits for it (issue 21). Its time is the thread's CPU time: a finalizer
    the collector calls may let another thread run, and that thread's work is not the collector's. Counted in plain
    lists by a `gc.callbacks` hook, which runs inside whatever code allocated, a lock's holder included, so it takes
    no lock; CPython runs one collection at a time."""

    def __init__(self, clock=time.thread_time) -> None:
        self.clock = clock
        self.started = 0.0
        self.counts = [[0] * (len(GC_PAUSE_BUCKETS_S) + 1) for _generation in range(3)]  # the last: over them all
        self.seconds = [0.0] * 3

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = self.clock()
            return
        paused_s = self.clock() - self.started
        generation = info["generation"]
        self.seconds[generation] += paused_s
        self.counts[generation][bisect.bisect_left(GC_PAUSE_BUCKETS_S, paused_s)] += 1

    def describe(self):
        return []

    def collect(self):
        family = HistogramMetricFamily(
            "suho_gc_pause_seconds",
            "Runs of Python's cyclic garbage collector, which hold every thread of the process, per generation "
            "(the collecting thread's CPU time)",
            labels=["generation"],
        )
        bounds = [str(bound) for bound in GC_PAUSE_BUCKETS_S] + ["+Inf"]
        for generation, counts in enumerate(self.counts):
            family.add_metric(
                [str(generation)], list(zip(bounds, accumulate(counts), strict=True)), self.seconds[generation]
            )
        yield family


GC_PAUSES = GcPauses()


# The kernel's queue of connections not yet accepted. Twisted's default of 50 overflowed in a reconnect storm (a
# restarted process's EAs, or a balancer's retries, all at once): each overflow drops a SYN, and that EA's TCP stack
# sends it again 1, 3, 7 s later. A storm of 5,000 EAs overflowed it ~6,400 times (`nstat TcpExtListenOverflows`;
# issue 21); with 4096, none. The kernel caps this at net.core.somaxconn (4096 since Linux 5.4).
LISTEN_BACKLOG = 4096
BACKLOG_ENDPOINTS = ("tcp:", "tcp6:", "ssl:")  # Twisted's listening endpoints that take `backlog=`; fd: is listening


def endpoints_with_backlog(endpoints: list[str], backlog: int = LISTEN_BACKLOG) -> list[str]:
    """daphne's endpoint descriptions (`-b/-p` become `tcp:port=…:interface=…`) with a listen backlog where a
    description sets none."""
    return [
        f"{e}:backlog={backlog}" if e.startswith(BACKLOG_ENDPOINTS) and "backlog=" not in e else e for e in endpoints
    ]


class Server(daphne.server.Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.endpoints = endpoints_with_backlog(self.endpoints)

    def run(self):
        gc_tune()  # the application and its modules are loaded by now
        super().run()

    def create_application(self, protocol, scope):
        """daphne's create_application with an InboundQueue instead of an asyncio.Queue."""
        assert "application_instance" not in self.connections[protocol]
        input_queue = InboundQueue(getattr(protocol, "message_taken", None))
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return input_queue

    def kill_all_applications(self):
        """daphne's "before shutdown" step cancels every application; drain first (module docstring)."""
        drained = defer.Deferred.fromFuture(asyncio.ensure_future(self.drain()))
        drained.addErrback(lambda failure: log.error("drain failed: %s", failure.getErrorMessage()))
        drained.addCallback(lambda _: super(Server, self).kill_all_applications())
        return drained

    async def drain(self) -> None:
        """Put an `ea.drain` message behind what each EA connection has already read (EAConsumer.ea_drain closes it
        with 1012), then wait until those applications have finished their disconnect, bounded by SHUTDOWN_DRAIN_S."""
        from django.conf import settings

        drain_start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.SHUTDOWN_DRAIN_S
        instances = []
        for protocol, details in list(self.connections.items()):
            queue = getattr(protocol, "application_queue", None)
            instance = details.get("application_instance")
            if getattr(protocol, "path", b"") != EA_PATH or queue is None or instance is None or instance.done():
                continue
            queue.put_nowait({"type": "ea.drain"})
            instances.append(instance)
        log.warning("draining: %d EA connections told to reconnect elsewhere", len(instances))
        if instances:
            _done, pending = await asyncio.wait(instances, timeout=max(deadline - loop.time(), 0))
            if pending:
                log.error("draining: %d EA connections still open after %s s", len(pending), settings.SHUTDOWN_DRAIN_S)
        try:
            await asyncio.wait_for(drain_hooks_run(), timeout=max(deadline - loop.time(), 1))
        except Exception:
            log.exception("draining: the apps' shutdown hooks (the gateway's buffered rows) did not all finish")
        log.warning("drained")


class DebugArgument:
    """An argument of one of autobahn's debug log lines, formatted only when the line is written."""

    __slots__ = ("_args", "_format", "_kwargs")

    def __init__(self, format_, *args, **kwargs) -> None:
        self._format, self._args, self._kwargs = format_, args, kwargs

    def __str__(self) -> str:
        return str(self._format(*self._args, **self._kwargs))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


DEBUG_FORMATTERS = ("hltype", "hlval", "pformat")


def autobahn_debug_arguments_deferred() -> None:
    """autobahn (25.x) formats the arguments of its debug log lines before the logger drops them: on every read and
    write of a socket `hltype(self.dataReceived)` and two `hlval(...)`, each a click.style() call (~9 µs the three),
    and on every new connection a pformat() of its 30 options. The helpers in the two modules on that path are
    replaced by DebugArgument, which formats the same text only if a debug line is written: a reconnect storm of
    5,000 EAs took 19.9 s instead of 38.1 s, the server's CPU 16.5 s instead of 31.7 s (issue 21, one run each).

    Every use of those helpers there is a debug line's argument but one, `Timings.__str__`, whose text is returned:
    it gets pprint's own pformat back."""
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    for module in (protocol, twisted_websocket):
        for name in DEBUG_FORMATTERS:
            original = getattr(module, name, None)
            if original is not None and not isinstance(original, partial):
                setattr(module, name, partial(DebugArgument, original))
    protocol.Timings.__str__ = _timings_text


def _timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


class CLI(CommandLineInterface):
    server_class = Server


def main(argv: list[str]) -> None:
    # daphne's Server.run() builds its factories from these module globals; ours are subclasses of daphne's own.
    daphne.server.HTTPFactory = BoundedHTTPFactory
    daphne.server.WebSocketFactory = EAWebSocketFactory
    autobahn_debug_arguments_deferred()
    CLI().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
