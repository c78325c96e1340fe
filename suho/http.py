"""HTTP through Django with one thread hop per request instead of about six, on threads that are reused.

Django's ASGI handler runs a chain of sync middleware from the event loop: into a thread for the middleware, back to
the loop for the core handler (async_to_sync), into the thread again for a sync view, and back out the same way;
each crossing is a wake-up of the loop or the thread and a GIL hand-over, contended by the EA gateway's loop in the
same process. Every view but the health checks is sync, so `OneHopHandler` runs the middleware chain and the view
in one trip to the request's thread (Django's own sync request path, as under WSGI): signal POSTs back to back were
answered at ~80/s instead of ~63/s on this machine (issue 21; `bench.run --only delivery`, one run each).

The request's thread is one of a fixed set (`REQUEST_THREADS`), lent to the request for its whole life, not the new
thread Django's ASGI handler starts for every request: starting and ending it cost ~1–2 ms of CPU per request on a
2-core EPYC, a fifth of a signal POST's (issue 21). Everything of the request that Django runs in a thread runs on
the lent one, in one trip (`OneHopHandler.handle`): `request_started`, the view, and the response's close with
`request_finished`, which hands the request's database connections back to their pools. Nothing else of one
request stays for the next: the tenant setting is transaction-scoped, and Django's request state lives in context
variables. The set is as large as a database pool; a request past it waits for a thread, as it would wait for a
connection. A request holds its thread from before its body is read to after its response is sent; under daphne
neither waits on the client (Twisted calls the application once the whole body has arrived, and buffers what it
writes), so a slow or stalled client holds no request thread. An ASGI server that streamed bodies to the
application would need the thread taken after the body is read.
/healthz and /readyz are async views, so they keep Django's async handler, where they run on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

log = logging.getLogger(__name__)

ASYNC_PATHS = frozenset({"/healthz", "/readyz"})
REQUEST_THREADS = settings.DB_POOL_MAX_SIZE


class OneHopHandler(ASGIHandler):
    def __init__(self, threads: int = REQUEST_THREADS) -> None:
        super().__init__()
        self.executors = [ThreadPoolExecutor(1, thread_name_prefix=f"suho-http-{i}") for i in range(threads)]
        self._idle: asyncio.Queue | None = None
        self._idle_loop: asyncio.AbstractEventLoop | None = None

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the sync chain, as WSGI builds it

    async def __call__(self, scope, receive, send):
        idle = self._idle_executors()
        executor = await idle.get()
        try:
            async with ThreadSensitiveContext(executor=executor):  # Django's own context (inside) keeps this one
                await super().__call__(scope, receive, send)
        finally:
            idle.put_nowait(executor)

    def _idle_executors(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._idle_loop is not loop:  # one loop per process in production; tests start a loop per test
            self._idle, self._idle_loop = asyncio.Queue(), loop
            for executor in self.executors:
                self._idle.put_nowait(executor)
        return self._idle

    async def handle(self, scope, receive, send):
        """Django's `ASGIHandler.handle` with a request's synchronous parts in one hop instead of three (the
        `request_started` receivers, the middleware chain with the view, and the response's close with
        `request_finished`): each hop is a hand-over to the thread and back, with the GIL, and the loop's two tasks
        per request (the view and a wait for the client's disconnect) are gone. Signal POSTs back to back, three
        alternating rounds: 8.7, 9.1, 7.6 ms of server CPU per POST against 10.1, 9.9, 8.6 (issue 21).

        A response that is not streamed is whole once the view returns, so it is closed in the same hop, before its
        bytes are sent (the request's database connections go back to their pools a little earlier); a streamed one
        (a file) is closed after it is sent, as Django does. A client that disconnects while its request runs
        changes nothing: a sync view in a thread was never cancelled by it."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._response, thread_sensitive=True)(scope, body_file)
        except BaseException:
            body_file.close()
            raise
        try:
            await self.send_response(response, send)
        finally:
            if response.streaming:  # its content may still read the request: the body stays open until here
                await sync_to_async(response.close, thread_sensitive=True)()
            body_file.close()

    def _response(self, scope, body_file):
        """In the request's thread: what `handle`'s one hop does, in Django's order. A close that fails (a
        `request_finished` receiver) is logged, and the response still goes out, as it would have under Django,
        which closes after sending."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):  # as Django's run_get_response
                response.block_size = self.chunk_size
        if not response.streaming:
            try:
                response.close()
            except Exception:
                log.exception("closing the response failed (%s %s)", scope.get("method"), scope.get("path"))
            if request is not None:
                request_cycles_break(request, response)
        return response


def request_cycles_break(request, response) -> None:
    """Once a response is closed: Django's request and its message storage, DRF's request, its view and the
    response refer to each other, so ~100 objects per request would wait for CPython's cyclic collector, whose
    pauses hold every thread of the process (issue 21). With their attributes dropped, they are freed when `handle`
    lets go of the response, which keeps its own: it is sent after this."""
    context = getattr(response, "renderer_context", None) or {}  # DRF's: its view, its request, the response
    for finished in (context.get("view"), context.get("request"), request):
        if finished is not None:
            vars(finished).clear()
    context.clear()


def http_application(django_asgi_app, *, threads: int = REQUEST_THREADS):
    """The HTTP ASGI app: health checks on Django's async handler, everything else one hop to a request thread."""
    one_hop = OneHopHandler(threads)

    async def app(scope, receive, send):
        handler = django_asgi_app if scope["path"] in ASYNC_PATHS else one_hop
        await handler(scope, receive, send)

    return app
