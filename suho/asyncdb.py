"""Database work from async code (consumers, the gateway's batchers, NATS services, /readyz): run in a thread of a
pool sized to the connection pool, and every connection the call took is handed back to its pool when it returns.

asgiref's `sync_to_async` never hands a connection back: each worker thread that ran one kept its connection checked
out of the pool. Channels' `database_sync_to_async` returns only those it judges too old. Here every connection goes
back when the call returns, and at most `DB_POOL_MAX_SIZE` threads do database work at once, so async callers
queue in the executor instead of timing out on the pool.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

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
    return sync_to_async(_returning_connections(func), thread_sensitive=False, executor=_executor)
