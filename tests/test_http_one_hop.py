"""suho/http.py: HTTP requests through the ASGI application (as daphne calls it) run the middleware chain and the view
in one trip to a request thread, never calling back to the event loop; requests run side by side in a pool of
threads (not one after the other in asgiref's shared thread), and each hands its database connections back."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from suho.asgi import application

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _scope(path: str, method: str = "GET", headers: list | None = None) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1")] + (headers or []), "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _request(path: str, method: str = "GET", body: bytes = b"", headers: list | None = None) -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(application, _scope(path, method, headers))
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(10)
    content = b""
    while True:
        message = await communicator.receive_output(10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return start["status"], content


def test_an_api_request_goes_to_the_sync_thread_once_and_never_back_to_the_loop(monkeypatch):
    """Django's async handler would call back to the loop (async_to_sync) from inside the sync middleware chain."""
    from asgiref import sync

    back_to_loop: list[object] = []
    call = sync.AsyncToSync.__call__

    def counting(self, *args, **kwargs):
        back_to_loop.append(self.awaitable)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(sync.AsyncToSync, "__call__", counting)
    headers = [(b"authorization", b"Bearer suho_ml_no"), (b"content-type", b"application/json")]
    status, body = asyncio.run(_request("/api/signals/", "POST", b"{}", headers))
    assert status == 401, body
    assert b"not_authenticated" in body
    assert back_to_loop == []


_both_inside = threading.Barrier(2)


def _both_at_once(request):
    """Answers only once two requests are inside a view together: served one after the other, it times out (500)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    _both_inside.wait(timeout=5)
    return HttpResponse(str(threading.get_ident()))


urlpatterns = [path("both-at-once/", _both_at_once)]


def _in_use() -> int:
    stats = connections["default"].pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


@override_settings(ROOT_URLCONF=__name__)
def test_two_requests_run_side_by_side_and_hand_their_connections_back():
    _both_inside.reset()
    before = _in_use()

    async def both():
        return await asyncio.gather(_request("/both-at-once/"), _request("/both-at-once/"))

    (status_a, thread_a), (status_b, thread_b) = asyncio.run(both())
    assert (status_a, status_b) == (200, 200)
    assert thread_a != thread_b
    assert _in_use() == before  # each request thread handed its connection back to the pool
