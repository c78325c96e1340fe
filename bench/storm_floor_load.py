"""Clients of the storm's floor (bench/storm_floor.py), in a process of their own: `websockets` on one event loop.

python -m bench.storm_floor_load CONFIG.json     (JSON lines on stdout, `go` on stdin, as bench.reconnect_load)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect


async def storm(config: dict) -> dict:
    print(json.dumps({"event": "ready"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    started = time.time()
    slots = asyncio.Semaphore(config["max_connecting"])
    hello = bytes(config["hello_bytes"])
    answered_at: list[float] = []
    sockets, failures = [], 0

    async def one() -> None:
        nonlocal failures
        async with slots:
            try:
                socket = await connect(config["url"], open_timeout=config["timeout_s"], max_queue=None)
                sockets.append(socket)
                await socket.send(hello)
                for _ in range(config["answers"]):
                    await asyncio.wait_for(socket.recv(), config["timeout_s"])
                answered_at.append(time.time())
            except Exception:  # counted; the figure is then not reported
                failures += 1

    await asyncio.gather(*(one() for _ in range(config["count"])))
    # all stay connected until the storm is over, as in bench.reconnect_load
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    return {"event": "result", "started": started, "last": max(answered_at, default=started),
            "answered": len(answered_at), "failures": failures}  # fmt: skip


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(storm(config))), flush=True)


if __name__ == "__main__":
    main()
