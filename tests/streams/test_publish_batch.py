"""`suho.bus.publish_batch`: many messages in one write to a real NATS server (issue 21), with the checks nats-py's
`publish` makes for each: a batch with any bad message sends nothing, and what is sent arrives whole and in order."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import pytest
from django.conf import settings
from nats import errors as nats_errors

from suho.bus import nats_servers, publish_batch


async def _pair():
    """A publisher and a subscriber connection, and the messages the subscriber has received so far (not the probes).

    A message published on another connection right after the subscriber's flush is sometimes not delivered: about
    1 in 300 here with nats-py's own `publish`, none with 50 ms between the two (the subscription reaches the
    server's routing a moment after its PONG). So the publisher sends probes until one arrives; the last value is how
    many it sent."""
    publisher = await nats.connect(nats_servers(settings.NATS_URL), connect_timeout=5)
    subscriber = await nats.connect(nats_servers(settings.NATS_URL), connect_timeout=5)
    received: list[tuple[str, bytes]] = []
    probed = asyncio.Event()

    async def arrived(msg) -> None:
        if msg.subject == "test.probe.batch":
            probed.set()
        else:
            received.append((msg.subject, msg.data))

    await subscriber.subscribe("test.batch.>", cb=arrived)
    await subscriber.subscribe("test.probe.batch", cb=arrived)
    await subscriber.flush()
    for probes in range(1, 21):
        await publisher.publish("test.probe.batch", b"")
        await publisher.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probed.wait(), 0.25)
            return publisher, subscriber, received, probes
    raise AssertionError("no probe reached the subscriber in 5 s")


async def _settled(publisher, subscriber, received: list, count: int) -> None:
    await publisher.flush()
    for _ in range(200):
        if len(received) >= count:
            break
        await asyncio.sleep(0.01)
    await subscriber.flush()


async def test_a_batch_arrives_whole_and_in_order_and_is_counted():
    publisher, subscriber, received, probes = await _pair()
    try:
        messages = [(f"test.batch.{i % 3}", f'{{"n":{i}}}'.encode()) for i in range(50)] + [("test.batch.empty", b"")]
        await publish_batch(publisher, messages)
        await _settled(publisher, subscriber, received, len(messages))
        assert received == messages
        assert publisher.stats["out_msgs"] == probes + len(messages)
        assert publisher.stats["out_bytes"] == sum(len(data) for _subject, data in messages)  # probes are empty
    finally:
        await publisher.close()
        await subscriber.close()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (("test.batch.a b", b"x"), nats_errors.BadSubjectError),  # a space would split the PUB line
        (("test.batch.a\r\nPUB test.batch.injected 1", b"x"), nats_errors.BadSubjectError),  # protocol injection
        (("", b"x"), nats_errors.BadSubjectError),
        (("test.batch.big", b"x" * (1024 * 1024 + 1)), nats_errors.MaxPayloadError),  # over the server's 1 MB
    ],
)
async def test_a_batch_with_one_bad_message_sends_nothing(bad, error):
    publisher, subscriber, received, probes = await _pair()
    try:
        with pytest.raises(error):
            await publish_batch(publisher, [("test.batch.good", b"1"), bad, ("test.batch.after", b"2")])
        await publish_batch(publisher, [("test.batch.next", b"3")])  # the connection still works
        await _settled(publisher, subscriber, received, 1)
        assert received == [("test.batch.next", b"3")]
        assert publisher.stats["out_msgs"] == probes + 1
    finally:
        await publisher.close()
        await subscriber.close()


async def test_a_closed_connection_refuses_a_batch():
    publisher = await nats.connect(nats_servers(settings.NATS_URL), connect_timeout=5)
    await publisher.close()
    with pytest.raises(nats_errors.ConnectionClosedError):
        await publish_batch(publisher, [("test.batch.closed", b"x")])
