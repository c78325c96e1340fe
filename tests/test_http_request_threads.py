"""suho/http.py: the request threads are a fixed pool that is reused, not a new thread per request (issue 21), and a
reused thread carries nothing of one request into the next."""

from __future__ import annotations

import asyncio
import json

from tests.test_http_one_hop import _request


def _app_with(threads: int):
    from django.core.asgi import get_asgi_application

    from suho.http import http_application

    return http_application(get_asgi_application(), threads=threads)


async def _request_to(app, path: str, headers: list | None = None) -> tuple[int, bytes]:
    return await _request(path, "GET", b"", headers, app=app)


def test_requests_run_on_a_bounded_pool_of_threads_that_are_reused(monkeypatch, committed):
    """Not a new thread per request (Django's ASGI handler starts one): 12 concurrent requests on 2 threads."""
    import threading

    from django.core.handlers.base import BaseHandler

    threads: list[int] = []
    get_response = BaseHandler.get_response

    def recording(self, request):
        threads.append(threading.get_ident())
        return get_response(self, request)

    monkeypatch.setattr(BaseHandler, "get_response", recording)
    app = _app_with(2)

    async def requests():
        return await asyncio.gather(*[_request_to(app, "/no-such-page/") for _ in range(12)])

    answers = asyncio.run(requests())
    assert [status for status, _body in answers] == [404] * 12
    assert len(threads) == 12
    assert len(set(threads)) <= 2


def test_a_reused_request_thread_carries_nothing_of_one_tenant_into_the_next_request(committed):
    """One thread serves tenant A, a refused request, then tenant B: each sees its own signals only."""
    from signals.services import ml_engine_key_create
    from tests.accounts.helpers import account_make, tenant_make
    from tests.factories import make_signal

    tenants = [tenant_make(), tenant_make()]
    signals = [str(make_signal(account_make(tenant)).signal_id) for tenant in tenants]
    keys = [ml_engine_key_create(tenant_id=tenant.id, label="one-thread")[1] for tenant in tenants]
    app = _app_with(1)

    async def requests():
        seen = []
        for key in (keys[0], "suho_ml_forged", keys[1], keys[0]):
            status, body = await _request_to(app, "/api/signals/", [(b"authorization", f"Bearer {key}".encode())])
            seen.append((status, body))
        return seen

    (a_status, a_body), (forged_status, _), (b_status, b_body), (again_status, again_body) = asyncio.run(requests())
    assert (a_status, forged_status, b_status, again_status) == (200, 401, 200, 200)
    assert [row["signal_id"] for row in json.loads(a_body)["results"]] == [signals[0]]
    assert [row["signal_id"] for row in json.loads(b_body)["results"]] == [signals[1]]
    assert json.loads(again_body) == json.loads(a_body)


def test_a_request_hands_its_database_connections_back_on_its_own_thread(committed):
    """request_finished (Django closes the request's connections on it) runs on the thread the view ran on: the
    connections it took go back to their pools when it ends, not when that thread happens to serve another."""
    from django.db import connections

    from signals.services import ml_engine_key_create
    from suho.http import OneHopHandler
    from tests.accounts.helpers import tenant_make

    key = ml_engine_key_create(tenant_id=tenant_make().id, label="handed-back")[1]
    handler = OneHopHandler(1)
    status, _body = asyncio.run(_request_to(handler, "/api/signals/", [(b"authorization", f"Bearer {key}".encode())]))

    def held() -> list[str]:
        return [alias for alias in ("default", "operator") if connections[alias].connection is not None]

    assert status == 200
    assert handler.executors[0].submit(held).result(10) == []
