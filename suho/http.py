"""HTTP through Django with one thread hop per request instead of about six, on threads that are reused.

Django's ASGI handler runs a chain of sync middleware from the event loop: into a thread for the middleware, back to
the loop for the core handler (async_to_sync), into the thread again for a sync view, and back out the same way;
each crossing is a wake-up of the loop or the thread and a GIL hand-over, contended by the EA gateway's loop in the
same process. Every view but the health checks is sync, so `OneHopHandler` runs the middleware chain and the view
in one trip to a request thread (Django's own sync request path, as under WSGI): signal POSTs back to back were
answered at ~80/s instead of ~63/s on this machine (issue 21; `bench.run --only delivery`, one run each).

The request threads are a fixed pool (`REQUEST_THREADS`), as a WSGI server's are, not the new thread per request
that Django's ASGI handler starts: starting and ending that thread cost ~1–2 ms of CPU per request on a 2-core EPYC,
a fifth of a signal POST's (issue 21). Nothing of one request stays on its thread for the next: database connections
go back to their pools at the end of every request, the tenant context is transaction-scoped (suho/tenancy.py), and
Django's per-request state lives in context variables, which each request gets a copy of. The pool is as large as a
database pool: a request past it waits for a thread, as it would wait for a connection.
/healthz and /readyz are async views, so they keep Django's async handler, where they run on the loop.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

ASYNC_PATHS = frozenset({"/healthz", "/readyz"})
REQUEST_THREADS = settings.DB_POOL_MAX_SIZE


class OneHopHandler(ASGIHandler):
    def __init__(self, executor: ThreadPoolExecutor | None = None) -> None:
        super().__init__()
        self.executor = executor or ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="suho-http")

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the sync chain, as WSGI builds it

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=False, executor=self.executor)(request)


def http_application(django_asgi_app, *, executor: ThreadPoolExecutor | None = None):
    """The HTTP ASGI app: health checks on Django's async handler, everything else one hop to a request thread."""
    one_hop = OneHopHandler(executor)

    async def app(scope, receive, send):
        handler = django_asgi_app if scope["path"] in ASYNC_PATHS else one_hop
        await handler(scope, receive, send)

    return app
