"""Can a JetStream stream keep every tick? (docs/decisions/0008): ticks published on core NATS, as the gateway
publishes them, into a file stream configured like MT5_ACCOUNT; how many it stored, and how fast.

    .venv/bin/python -m suho.devstack exec -- .venv/bin/python -m bench.jetstream_ticks [--rate 24000] [--seconds 5]

Uses the NATS server at NATS_URL (the embedded one fsyncs every write: `sync_interval: always`) and a stream of its
own (`BENCH_TICKS`, deleted afterwards), never MT5_ACCOUNT. Not part of `make bench`: a one-off measurement behind a
design decision.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import nats
from nats.js.api import StorageType, StreamConfig

STREAM = "BENCH_TICKS"
PAYLOAD = b'{"symbol":"EURUSD","bid":1.09512,"ask":1.0953,"spread":18.0,"time_us":1764000000000000,"tradeable":true}'


async def measure(url: str, rate: int, seconds: float, settle_s: float) -> dict:
    connection = await nats.connect(url)
    jetstream = connection.jetstream()
    try:
        await jetstream.add_stream(StreamConfig(name=STREAM, subjects=["bench.ticks.>"], storage=StorageType.FILE))
        published, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            for i in range(rate // 100):  # 100 bursts a second, 8 symbols over 120 accounts like the ingest bench
                await connection.publish(f"bench.ticks.{published // 8 % 120}.quotes.S{i % 8}", PAYLOAD)
                published += 1
            await connection.flush()
            await asyncio.sleep(max(0.0, started + published / rate - time.monotonic()))
        sent_s = time.monotonic() - started
        stored_at_end = (await jetstream.stream_info(STREAM)).state.messages
        stored, deadline = stored_at_end, time.monotonic() + settle_s
        while time.monotonic() < deadline:  # what was queued inside the server is still being written
            await asyncio.sleep(0.5)
            stored = (await jetstream.stream_info(STREAM)).state.messages
        return {"published": published, "sent_s": sent_s, "stored_when_sent": stored_at_end, "stored": stored}
    finally:
        await jetstream.delete_stream(STREAM)
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=24_000, help="ticks per second offered (default 24,000)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait for queued writes")
    args = parser.parse_args()
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    r = asyncio.run(measure(url, args.rate, args.seconds, args.settle))
    print(
        f"{url}: {r['published']:,} ticks published in {r['sent_s']:.1f} s; stored by then {r['stored_when_sent']:,} "
        f"({r['stored_when_sent'] / r['sent_s']:,.0f}/s); after {args.settle:.0f} s more {r['stored']:,} "
        f"({r['stored'] / r['published']:.1%}); dropped {r['published'] - r['stored']:,}"
    )


if __name__ == "__main__":
    main()
