"""`manage.py reference_feed --source polygon`: Polygon quotes (from a local fake server) stored and cached."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from websockets.asyncio.server import serve

from quotes.management.commands.reference_feed import POLYGON_KEY_MISSING
from quotes.models import ReferenceQuote
from quotes.selectors import reference_quote_latest
from suho.cache import cache_client, reference_quote_key

T0_MS = 1_764_000_000_000


async def polygon(ws) -> None:
    await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
    await ws.recv()  # auth
    await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))
    await ws.recv()  # subscribe
    await ws.send(json.dumps([{"ev": "C", "x": 48, "p": "EUR/USD", "b": 1.0949 + i / 1e4, "a": 1.0951 + i / 1e4,
                               "t": T0_MS + i} for i in range(3)]))  # fmt: skip
    await ws.wait_closed()


@pytest.fixture
def fake_polygon():
    """The fake server on its own thread and loop: the command runs its own event loop in the test's thread."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), None
    port = []

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        async with serve(polygon, "127.0.0.1", 0) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    yield f"ws://127.0.0.1:{port[0]}"
    loop.call_soon_threadsafe(stop.set)
    thread.join(5)


def test_polygon_quotes_are_stored_and_the_latest_cached(committed, fake_polygon, settings):
    settings.POLYGON_API_KEY, settings.POLYGON_WS_URL = "test-key", fake_polygon
    cache_client().delete(reference_quote_key("EURUSD"))

    call_command("reference_feed", "--source", "polygon", "--symbols", "EURUSD", "--limit", "3")

    rows = ReferenceQuote.objects.order_by("time").values_list("symbol", "bid", "ask", "source")
    assert list(rows) == [("EURUSD", Decimal("1.0949") + i / Decimal(10**4), Decimal("1.0951") + i / Decimal(10**4),
                           "polygon") for i in range(3)]  # fmt: skip
    assert reference_quote_latest(symbol="EURUSD")["bid"] == pytest.approx(1.0951)


def test_the_polygon_source_needs_an_api_key(settings):
    settings.POLYGON_API_KEY = ""
    with pytest.raises(CommandError, match=re.escape(POLYGON_KEY_MISSING)):
        call_command("reference_feed", "--source", "polygon")
