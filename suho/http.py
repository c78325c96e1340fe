"""HTTP through Django with one thread hop per request instead of about six.

Django's ASGI handler runs a chain of sync middleware from the event loop: into a thread for the middleware, back to
the loop for the core handler (async_to_sync), into the thread again for a sync view, and back out the same way;
each crossing is a wake-up of the loop or the thread and a GIL hand-over, contended by the EA gateway's loop in the
same process. Every view but the health checks is sync, so `OneHopHandler` runs the middleware chain and the view
in one trip to the request's thread (Django's own sync request path, as under WSGI): signal POSTs back to back
were answered at ~80/s instead of ~63/s on this machine (issue 21; `bench.run --only delivery`, one run each).
/healthz and /readyz are async views, so they keep Django's async handler, where they run on the loop.

That trip goes to a pool of HTTP_THREADS threads that outlive their requests. Django's handler gives each request a
thread of its own (asgiref's ThreadSensitiveContext) and ends it afterwards, so every request started a thread
and built its database wrappers anew in it; with the pool, signal POST -> EA p50 went from 12.4 to 10.9 ms and its
p99 from ~21 to ~18.5 ms (means and medians of 3 and 5 runs of `bench.run --only delivery`; runs vary by a few ms).
Requests beyond HTTP_THREADS wait for a free thread. Each request hands its database connections back to their
pools when it returns: Django's request_finished, which would, runs in the request's own context thread instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from suho.asyncdb import returning_connections

ASYNC_PATHS = frozenset({"/healthz", "/readyz"})
_request_threads = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="suho-http")


class OneHopHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the sync chain, as WSGI builds it

    async def get_response_async(self, request):
        respond = returning_connections(self.get_response)
        return await sync_to_async(respond, thread_sensitive=False, executor=_request_threads)(request)


def http_application(django_asgi_app):
    """The HTTP ASGI app: health checks on Django's async handler, everything else one hop to a request thread."""
    one_hop = OneHopHandler()

    async def app(scope, receive, send):
        handler = django_asgi_app if scope["path"] in ASYNC_PATHS else one_hop
        await handler(scope, receive, send)

    return app
