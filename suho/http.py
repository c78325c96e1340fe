"""HTTP through Django with one thread hop per request instead of about six.

Django's ASGI handler runs a chain of sync middleware from the event loop: into a thread for the middleware, back to
the loop for the core handler (async_to_sync), into the thread again for a sync view, and back out the same way;
each crossing is a wake-up of the loop or the thread and a GIL hand-over, contended by the EA gateway's loop in the
same process. Every view but the health checks is sync, so `OneHopHandler` runs the middleware chain and the view
in one trip to the request's thread (Django's own sync request path, as under WSGI): signal POSTs back to back
were answered at ~80/s instead of ~63/s on this machine (issue 21; `bench.run --only delivery`, one run each).
/healthz and /readyz are async views, so they keep Django's async handler, where they run on the loop.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

ASYNC_PATHS = frozenset({"/healthz", "/readyz"})


class OneHopHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the sync chain, as WSGI builds it

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def http_application(django_asgi_app):
    """The HTTP ASGI app: health checks on Django's async handler, everything else one hop to the sync thread."""
    one_hop = OneHopHandler()

    async def app(scope, receive, send):
        handler = django_asgi_app if scope["path"] in ASYNC_PATHS else one_hop
        await handler(scope, receive, send)

    return app
