"""A web process's shutdown: stop being ready, tell every EA to reconnect elsewhere, then exit (decision 0018).

On SIGTERM `python -m suho.server` calls `drain_start()` before daphne cancels anything: from then on `/readyz`
answers 503 (the balancer stops sending new connections here), each EA socket is closed with 1012 SERVICE_RESTART
after the frames it already read have been handled (their EVENT_ACKs sent), and an EA that still arrives is closed
the same way at once. The EA reconnects after SESSION_CLOSING's `retry_after_ms`, a jittered delay so that a
process's thousands of EAs do not all arrive at the others in the same instant. Last, the server awaits what the
apps registered with `drain_hook_register` (the gateway writes its buffered rows): plumbing imports no app.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable

DRAIN_RETRY_MIN_MS = 500  # the balancer has seen /readyz fail (or the port closed) by then, in most cases
DRAIN_RETRY_MAX_MS = 3000  # … and the reconnects of one process's EAs are spread over 2.5 s
DRAIN_REASON = "server restarting: reconnect"

_draining = threading.Event()  # read by /readyz (a thread or the loop) and the EA consumer
_hooks: list[Callable[[], Awaitable[None]]] = []


def drain_start() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()


def drain_retry_after_ms() -> int:
    """The delay one EA is told to wait before reconnecting: uniform over the window, per connection."""
    return random.randint(DRAIN_RETRY_MIN_MS, DRAIN_RETRY_MAX_MS)


def drain_hook_register(hook: Callable[[], Awaitable[None]]) -> None:
    """Have `hook` awaited once the EA connections are closed (or the drain time is up), before the process exits."""
    if hook not in _hooks:
        _hooks.append(hook)


async def drain_hooks_run() -> None:
    """Every registered hook in order; the first failure is raised after the rest have run."""
    failure = None
    for hook in list(_hooks):
        try:
            await hook()
        except Exception as exc:  # noqa: BLE001 — the next hook's rows matter as much
            failure = failure or exc
    if failure is not None:
        raise failure
