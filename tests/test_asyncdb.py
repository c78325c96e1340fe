"""suho.asyncdb.db_thread: the caller's context variables reach the thread; a cancelled caller drops a call still
waiting for a thread and lets a running one finish, as asgiref's sync_to_async did; an error reaches the caller; the
thread's database connections go back to the pool when the call returns. `db_thread_submit`, which nobody awaits,
logs what its work raises."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar

import pytest
from django.conf import settings
from django.db import connections

from suho.asyncdb import db_thread, db_thread_submit

marker: ContextVar[str] = ContextVar("marker", default="unset")


async def test_the_callers_context_variables_reach_the_thread():
    marker.set("from the caller")
    seen = await db_thread(lambda: (marker.get(), threading.current_thread().name))()
    assert seen[0] == "from the caller"
    assert seen[1].startswith("suho-db")


async def test_a_call_whose_caller_is_cancelled_while_it_waits_for_a_thread_never_runs():
    """Every database thread busy, so the call waits in the executor's queue when its caller is cancelled: it is
    dropped, as with asgiref (a HELLO whose EA has gone must not claim the account seconds later)."""
    release, ran = threading.Event(), threading.Event()
    busy = [asyncio.create_task(db_thread(release.wait)(5)) for _ in range(settings.DB_POOL_MAX_SIZE)]
    await asyncio.sleep(0.2)  # every thread has taken its blocker
    queued = asyncio.create_task(db_thread(ran.set)())
    await asyncio.sleep(0.05)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    await asyncio.gather(*busy)
    await db_thread(lambda: None)()  # a thread was free again and took what was queued after it
    assert not ran.is_set()


async def test_a_call_already_running_when_its_caller_is_cancelled_finishes_in_its_thread():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(5)
        finished.set()

    running = asyncio.create_task(db_thread(work)())
    await asyncio.to_thread(started.wait, 5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running  # at once, not when the thread is done
    assert not finished.is_set()
    release.set()
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


async def test_work_submitted_without_a_caller_logs_what_it_raises(caplog):
    done = threading.Event()

    def fails():
        done.set()
        raise ValueError("nobody awaits this")

    with caplog.at_level("ERROR", logger="suho.asyncdb"):
        db_thread_submit(fails)
        assert await asyncio.to_thread(done.wait, 5)
        for _ in range(50):  # the done-callback runs in the thread just after
            if caplog.records:
                break
            await asyncio.sleep(0.01)
    assert caplog.records[0].exc_info[1].args == ("nobody awaits this",)
