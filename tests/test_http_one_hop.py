"""suho/http.py: HTTP requests through the ASGI application (as daphne calls it) run the middleware chain and the view
in one trip to the request's thread, never calling back to the event loop."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.testing import ApplicationCommunicator
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from suho.asgi import application

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _scope(path: str, method: str = "GET", headers: list | None = None) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1")] + (headers or []), "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _request(
    path: str, method: str = "GET", body: bytes = b"", headers: list | None = None, app=application
) -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(app, _scope(path, method, headers))
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


def test_a_request_is_one_hop_to_its_thread(monkeypatch):
    """request_started, the middleware chain with the view, and the response's close: one trip to the request's
    thread (Django's own handler makes three), counted where work is handed to that thread."""
    from concurrent.futures import ThreadPoolExecutor

    hops: list[str] = []
    submit = ThreadPoolExecutor.submit

    def counting(self, fn, *args, **kwargs):
        if self._thread_name_prefix.startswith("suho-http"):
            hops.append(getattr(fn, "__qualname__", repr(fn)))
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting)
    headers = [(b"authorization", b"Bearer suho_ml_no"), (b"content-type", b"application/json")]
    status, _body = asyncio.run(_request("/api/signals/", "POST", b"{}", headers))
    assert status == 401
    assert len(hops) == 1, hops


STREAM_EVENTS: list[str] = []


def _streamed(request):
    from django.http import StreamingHttpResponse

    def chunks():
        yield b"first,"
        yield b"last"
        STREAM_EVENTS.append("all sent")

    response = StreamingHttpResponse(chunks())
    response._resource_closers.append(lambda: STREAM_EVENTS.append("closed"))
    return response


def _whole(request):
    from django.http import HttpResponse

    response = HttpResponse(b"whole")
    response._resource_closers.append(lambda: STREAM_EVENTS.append("closed"))
    return response


def _boom(request):
    raise RuntimeError("a view that fails")


def _reads_the_body_while_streamed(request):
    from django.http import StreamingHttpResponse

    def chunks():
        yield request.body  # read only once the response is being sent

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("one-hop/streamed/", _streamed),
    path("one-hop/whole/", _whole),
    path("one-hop/boom/", _boom),
    path("one-hop/echo/", csrf_exempt(_reads_the_body_while_streamed)),
]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
@pytest.mark.parametrize(
    ("url", "status", "body", "events"),
    [
        ("/one-hop/streamed/", 200, b"first,last", ["all sent", "closed"]),  # closed after it is sent, as Django does
        ("/one-hop/whole/", 200, b"whole", ["closed"]),  # closed in the request's one hop
        ("/one-hop/boom/", 500, None, []),  # the handler's 500, as Django's own handle gives it
    ],
)
def test_each_response_is_sent_whole_and_closed(settings, url, status, body, events):
    """…and request_finished (which hands the request's database connections back) is sent once for each."""
    from django.core.signals import request_finished

    settings.ROOT_URLCONF = __name__
    STREAM_EVENTS.clear()
    finished: list[object] = []

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_finished.connect(on_finished)
    try:
        got_status, got_body = asyncio.run(_request(url))
    finally:
        request_finished.disconnect(on_finished)
    assert got_status == status
    assert body is None or got_body == body
    assert STREAM_EVENTS == events
    assert len(finished) == 1


def _finished_fails(sender, **kwargs):
    raise RuntimeError("a request_finished receiver that fails")


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_a_streamed_response_can_read_the_request_body_while_it_is_sent(settings):
    settings.ROOT_URLCONF = __name__
    status, body = asyncio.run(_request("/one-hop/echo/", "POST", b"the body"))
    assert (status, body) == (200, b"the body")


def test_a_response_goes_out_even_when_closing_it_fails(settings, caplog):
    from django.core.signals import request_finished

    settings.ROOT_URLCONF = __name__
    request_finished.connect(_finished_fails)
    try:
        status, body = asyncio.run(_request("/one-hop/whole/"))
    finally:
        request_finished.disconnect(_finished_fails)
    assert (status, body) == (200, b"whole")
    assert "closing the response failed (GET /one-hop/whole/)" in caplog.text
