"""A takeover request to a process that has no responder (gone: a deploy replaced it) is not sent again for
NODE_GONE_S: a deploy's reconnect storm asks the old process every NODE_GONE_S instead of once per EA (issue 21).
Any other failure (a slow process) is asked again each time. Real NATS, the process's bus."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

from suho.bus import get_bus
from trading import gateway
from trading.gateway import DeliveryHub, takeover_subject


async def serve(node: str, asked: list, *, delay_s: float = 0.0):
    """Answer takeovers for `node` as a live process would (closed 1), after `delay_s`; returns the subscription."""

    async def answer(data: bytes) -> bytes:
        asked.append(json.loads(data))
        await asyncio.sleep(delay_s)
        return b'{"closed": 1}'

    return await asyncio.wrap_future(get_bus().serve(takeover_subject(node), answer))


async def unsubscribe(subscription) -> None:
    await asyncio.wrap_future(get_bus().submit(subscription.unsubscribe()))


async def test_a_process_with_no_responder_is_not_asked_again_until_the_window_ends(monkeypatch):
    monkeypatch.setattr(gateway, "NODE_GONE_S", 1.0)
    hub, node, asked = DeliveryHub(), f"gone-{uuid4().hex}", []
    assert await hub.take_over(node=node, account_id="a", epoch=1) == 0  # nobody serves it: gone

    subscription = await serve(node, asked)  # were it asked now, it would answer
    try:
        assert await hub.take_over(node=node, account_id="a", epoch=2) == 0
        assert asked == []  # skipped, not asked
        await asyncio.sleep(1.1)
        assert await hub.take_over(node=node, account_id="a", epoch=3) == 1  # the window is over: asked again
        assert asked == [{"account_id": "a", "epoch": 3}]
    finally:
        await unsubscribe(subscription)


async def test_a_slow_process_is_asked_again_each_time(monkeypatch):
    monkeypatch.setattr(gateway, "TAKEOVER_TIMEOUT_S", 0.2)
    hub, node, asked = DeliveryHub(), f"slow-{uuid4().hex}", []
    subscription = await serve(node, asked, delay_s=0.5)
    try:
        assert await hub.take_over(node=node, account_id="a", epoch=1) == 0  # timed out
        assert await hub.take_over(node=node, account_id="a", epoch=2) == 0
        for _ in range(30):  # the subscription answers one request at a time: the second waits for the first
            if len(asked) == 2:
                break
            await asyncio.sleep(0.1)
        assert [request["epoch"] for request in asked] == [1, 2]  # both sent: a timeout is not "gone"
    finally:
        await unsubscribe(subscription)


def test_the_gone_list_is_bounded(monkeypatch):
    monkeypatch.setattr(gateway, "MAX_GONE_NODES", 3)
    hub = DeliveryHub()
    for i in range(10):
        hub._gone_note(f"node-{i}", now=100.0)
    assert len(hub._gone) == 3 and "node-9" in hub._gone
