"""EAs of a reconnect storm, in a process of their own: `eaclient.EAClient`s on one event loop, no Django.

    python -m bench.reconnect_load CONFIG.json     (started by bench.reconnect: JSON lines on stdout, `go` on stdin)

Each EA presents the access token of its live session in HELLO (the quick reconnect after a deploy). The child
prints `{"event": "ready"}` once its clients are built, starts them all when it reads `go` (at most
`max_connecting` between the start of their connection and the end of their resync, which bounds the sockets in
the server's listen backlog), and prints one result: per EA the wall-clock time (`time.time()`, comparable across
processes) at which its resync was complete (RISK_PARAMETERS and CONFIG_UPDATE received; the server sends them
after AUTH_RESULT OK, from the read that also gives the signals and commands to resend). Every EA stays connected
until the storm is over; one the server closes (a HELLO not answered within its 10 s limit) reconnects with the
client's own backoff, as a real EA does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eaclient.client import ClientConfig, EAClient, Handler


class StormClient(EAClient):
    """An EAClient that notes when its resync is complete."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resynced = asyncio.Event()
        self.resynced_at: float | None = None

    async def handle(self, message) -> None:
        await super().handle(message)
        if self.resynced_at is None and self.counters.risk_received and self.counters.config_received:
            self.resynced_at = time.time()
            self.resynced.set()


async def storm(config: dict) -> dict:
    clients = [
        StormClient(
            ClientConfig(
                url=config["url"], account_id=UUID(ea["account_id"]), access_token=ea["access_token"],
                ea_version="bench-storm", network_timeout_s=config["timeout_s"],
            ),
            Handler(),
        )
        for ea in config["eas"]
    ]  # fmt: skip
    print(json.dumps({"event": "ready", "eas": len(clients)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    started = time.time()
    slots = asyncio.Semaphore(config["max_connecting"])
    runs: list[asyncio.Task] = []

    async def one(client: StormClient) -> None:
        async with slots:
            runs.append(asyncio.create_task(client.run()))
            resynced = asyncio.create_task(client.resynced.wait())
            await asyncio.wait([runs[-1], resynced], return_when=asyncio.FIRST_COMPLETED)
            resynced.cancel()

    try:
        async with asyncio.timeout(config["timeout_s"] * 3):
            await asyncio.gather(*(one(client) for client in clients))
    except TimeoutError:
        pass
    for client in clients:  # all stay connected until the storm is over, as after a deploy
        client.stop()
    await asyncio.gather(*runs, return_exceptions=True)
    refusals = [c.counters.last_refusal for c in clients if c.counters.auth_refusals]
    return {
        "event": "result",
        "started": started,
        "resynced": [client.resynced_at for client in clients],
        "refusals": refusals[:5],
        "refused": len(refusals),
        "connect_failures": sum(c.counters.connect_failures for c in clients),
    }


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(storm(config))), flush=True)


if __name__ == "__main__":
    main()
