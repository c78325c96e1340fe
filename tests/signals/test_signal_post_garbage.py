"""A signal POST for one account, answered 201 through the ASGI application as daphne calls it, leaves nothing for
CPython's cyclic collector (issue 21): its serializers' fields are unbound once validated or serialized
(signals.serializers.FieldsCopiedOnce.fields_unbind), and Django's request, DRF's request, the view and the response
let go of each other once the response is closed (suho.http.request_cycles_break). Before, each such POST left ~250
objects in reference cycles, and the collector's pauses to free them held every thread of the process."""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter

from tests.signals.conftest import quote_put, seed_json
from tests.test_http_one_hop import _request

# What the request builds, not the process's other threads (the bus, the outbox drain, the database pools): an object
# of these packages left in a reference cycle is the request's.
REQUEST_PACKAGES = ("django", "rest_framework", "signals", "accounts")


def _signal_post(account, ml_key) -> None:
    body = json.dumps(seed_json(account.account_id)).encode()
    headers = [(b"authorization", f"Bearer {ml_key}".encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    status, answer = asyncio.run(_request("/api/signals/", "POST", body, headers))
    assert status == 201, answer


def test_a_signal_post_leaves_no_reference_cycles(account, ml_key, published):
    quote_put(account)
    _signal_post(account, ml_key)  # warm-up: what a first request builds once (pools, caches) is not a POST's
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector would free is kept in gc.garbage instead
    try:
        for _ in range(3):
            _signal_post(account, ml_key)
        gc.collect()
        left = Counter(
            f"{type(thing).__module__}.{type(thing).__qualname__}"
            for thing in gc.garbage
            if type(thing).__module__.split(".")[0] in REQUEST_PACKAGES
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert left == {}, left.most_common(12)
    assert len(published.for_account(account.account_id)) == 4  # each POST was a signal sent out
