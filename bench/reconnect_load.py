"""EAs of a reconnect storm, in a process of their own: `bench.storm_ea.StormEA`s on one uvloop event loop, no Django.

    python -m bench.reconnect_load CONFIG.json     (started by bench.reconnect: JSON lines on stdout, `go` on stdin)

Each EA presents the access token of its live session in HELLO (the quick reconnect after a deploy). The child
prints `{"event": "ready"}` once its EAs are built, starts them all when it reads `go` (at most `max_connecting`
between the start of their connection and the end of their resync, which bounds the sockets in the server's listen
backlog), and prints one result: per EA the wall-clock time (`time.time()`, comparable across processes) at which
its resync was complete (RISK_PARAMETERS and CONFIG_UPDATE received; the server sends them after AUTH_RESULT OK,
from the read that also gives the signals and commands to resend). Every EA stays connected until the storm is
over, in every load process (`close` on stdin), then closes with 1000 and the child prints `{"event": "closed"}`;
one whose connection fails or is closed before its resync (a HELLO not answered within
the server's 10 s limit), or is not resynced within `timeout_s`, tries again with backoff, as a real EA does. A
refusal or a frame the EA cannot read ends that EA and is reported with the refusals.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from uuid import UUID

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.storm_ea import StormEA


async def storm(config: dict) -> dict:
    slots = asyncio.Semaphore(config["max_connecting"])
    eas = [
        StormEA(url=config["url"], account_id=UUID(ea["account_id"]), access_token=ea["access_token"],
                timeout_s=config["timeout_s"])
        for ea in config["eas"]
    ]  # fmt: skip
    loop = asyncio.get_running_loop()
    print(json.dumps({"event": "ready", "eas": len(eas)}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    started = time.time()

    async def one(ea: StormEA) -> None:
        async with slots:
            ea.start()
            await ea.finished

    try:
        async with asyncio.timeout(config["timeout_s"] * 3):
            await asyncio.gather(*(one(ea) for ea in eas))
    except TimeoutError:
        pass
    refusals = [ea.refusal or ea.error for ea in eas if ea.refusal or ea.error]
    print(json.dumps({
        "event": "result",
        "started": started,
        "resynced": [ea.resynced_at for ea in eas],
        "refusals": refusals[:5],
        "refused": len(refusals),
        "connect_failures": sum(ea.retries for ea in eas),
    }), flush=True)  # fmt: skip
    # all stay connected until the storm is over in every load process, as after a deploy: a process done early
    # would otherwise close its EAs while the others' still connect, and the server's disconnects would share the
    # storm's tail with them
    await loop.run_in_executor(None, sys.stdin.readline)  # "close"
    await asyncio.gather(*(ea.close() for ea in eas), return_exceptions=True)
    return {"event": "closed"}


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(uvloop.run(storm(config))), flush=True)


if __name__ == "__main__":
    main()
