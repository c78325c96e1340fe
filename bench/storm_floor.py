"""The reconnect storm's floor: the same storm against the same server (suho.server: daphne, Twisted, autobahn, its
limits) serving an ASGI app that does no work, so the server CPU per EA that the gateway's own code (Channels, the
consumer, the session, the database trips) adds on top of the stack can be read off (issue 21: where the goal is
missed, say why).

Each client (bench/storm_floor_load.py: `websockets`, as eaclient) connects, sends one frame the size of a token
HELLO and waits for three the size of AUTH_RESULT, RISK_PARAMETERS and CONFIG_UPDATE, which the app sends at once.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.stack import Daphne, LoadProcess

HELLO_BYTES = 420  # a token HELLO: header, account id, a ~360-byte access token, the EA's version
ANSWER_BYTES = (48, 110, 190)  # AUTH_RESULT, RISK_PARAMETERS, CONFIG_UPDATE as the gateway sends them (about)


async def application(scope, receive, send) -> None:
    """Accept, answer the first frame with three, ignore the rest; HTTP gets a 404."""
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] != "websocket":
        return
    answered = False
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if not answered:
                answered = True
                for size in ANSWER_BYTES:
                    await send({"type": "websocket.send", "bytes": bytes(size)})
        else:
            return


def run(*, count: int, load_processes: int, max_connecting: int, timeout_s: float, log_dir: Path) -> dict:
    """One storm of `count` clients on a fresh server process: the time until the last has its three frames, and
    the server's CPU."""
    server = Daphne(log_dir, name="storm-floor", app="bench.storm_floor:application")
    loads: list[LoadProcess] = []
    try:
        share = -(-count // load_processes)
        config = {"url": server.url, "max_connecting": max_connecting, "timeout_s": timeout_s,
                  "hello_bytes": HELLO_BYTES, "answers": len(ANSWER_BYTES)}  # fmt: skip
        loads = [
            LoadProcess({**config, "count": min(share, count - i)}, log_dir, f"storm-floor-{i // share}",
                        module="bench.storm_floor_load")
            for i in range(0, count, share)
        ]  # fmt: skip
        for load in loads:
            load.event(120)  # ready
        cpu0, t0 = server.cpu_s(), time.monotonic()
        for load in loads:
            load.go()
        results = [load.event(4 * timeout_s) for load in loads]
        cpu_s, window_s = server.cpu_s() - cpu0, time.monotonic() - t0
    finally:
        for load in loads:
            load.kill()
        server.stop()
    answered = sum(r["answered"] for r in results)
    last_s = max(r["last"] for r in results) - min(r["started"] for r in results) if answered == count else None
    return {"eas": count, "answered": answered, "all_answered_s": last_s, "server_cpu_s": cpu_s,
            "server_cores": cpu_s / window_s, "failures": sum(r["failures"] for r in results)}  # fmt: skip
