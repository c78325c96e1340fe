"""suho.asyncdb.db_thread: the caller's context variables reach the thread, a cancelled caller does not stop the call
(a batch of rows taken for a write is still written), an error reaches the caller, and the thread's database
connections go back to the pool when the call returns."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar

import pytest
from django.conf import settings
from django.db import connections

from suho.asyncdb import db_thread

marker: ContextVar[str] = ContextVar("marker", default="unset")


async def test_the_callers_context_variables_reach_the_thread():
    marker.set("from the caller")
    seen = await db_thread(lambda: (marker.get(), threading.current_thread().name))()
    assert seen[0] == "from the caller"
    assert seen[1].startswith("suho-db")


async def test_a_caller_cancelled_while_its_call_waits_for_a_thread_does_not_stop_the_call():
    """Every database thread busy, so the call waits in the executor's queue when its caller is cancelled: it still
    runs once a thread is free (asgiref's shield did the same; an executor future cancelled while queued never runs)."""
    release, finished = threading.Event(), threading.Event()
    busy = [asyncio.create_task(db_thread(release.wait)(5)) for _ in range(settings.DB_POOL_MAX_SIZE)]
    await asyncio.sleep(0.2)  # every thread has taken its blocker
    queued = asyncio.create_task(db_thread(finished.set)())
    await asyncio.sleep(0.05)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert not finished.is_set()
    release.set()
    await asyncio.gather(*busy)
    assert await asyncio.to_thread(finished.wait, 5)


async def test_an_error_reaches_the_caller():
    def fail() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await db_thread(fail)()


@pytest.mark.django_db(transaction=True)
async def test_the_threads_connection_goes_back_to_the_pool():
    def query_then_report() -> object:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return connections["default"]

    connection = await db_thread(query_then_report)()
    assert connection.connection is None  # closed: with a pool, handed back
