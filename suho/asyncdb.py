"""Database work from async code (consumers, the gateway's batchers, NATS services, /readyz): run in a thread of a
pool sized to the connection pool, and every connection the call took is handed back to its pool when it returns.

asgiref's `sync_to_async` never hands a connection back: each worker thread that ran one kept its connection checked
out of the pool. Channels' `database_sync_to_async` returns only those it judges too old. Here every connection goes
back when the call returns, and at most `DB_POOL_MAX_SIZE` threads do database work at once, so async callers
queue in the executor instead of timing out on the pool.

The hop is the executor's own, with the caller's context variables copied in. A caller cancelled while its call
still waits for a thread cancels the call (a HELLO whose EA has gone is not claimed seconds later); one cancelled
while its call runs gets CancelledError at once, and the call finishes in its thread. That is what asgiref's
`SyncToAsync` did, with more machinery: 120-130 µs of CPU per hop here against 87-91 (issue 21: a reconnect storm
makes three hops per EA, each trade event one). What it also did and no caller here needs: copying context changes
back to the caller, and asgiref's `Local` storage and `async_to_sync` finding the caller's loop inside the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)
_executor = ThreadPoolExecutor(max_workers=settings.DB_POOL_MAX_SIZE, thread_name_prefix="suho-db")


def _returning_connections(func):
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()  # with a pool, "close" hands each connection back

    return run


def db_thread(func):
    """`await db_thread(func)(*args, **kwargs)`: `func` runs in a database thread (context variables such as the
    operator path go along) and its connections go back to the pool afterwards, also when it raises."""
    returning = _returning_connections(func)

    @functools.wraps(func)
    async def call(*args, **kwargs):
        run = functools.partial(contextvars.copy_context().run, returning, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_executor, run)

    return call


def db_thread_submit(func, *args) -> None:
    """Run `func(*args)` in a database thread, as `db_thread` does, for a caller that takes its outcome some other
    way (trading.gateway.SharedRoundTrips): no task on the loop, and nobody to cancel it. What `func` raises is
    logged."""
    _executor.submit(_returning_connections(func), *args).add_done_callback(_failure_log)


def _failure_log(future) -> None:
    if (exc := future.exception()) is not None:
        log.error("database thread work failed", exc_info=exc)
