"""The volume batcher's pipeline: a batch's after-commit work (cache, NATS) overlaps the next batch's insert, runs in
batch order, and a caller's flush returns only once all of it is done."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from trading.gateway import Batcher

WAIT_S = 5.0


async def test_after_commit_work_overlaps_the_next_insert_in_batch_order_and_flush_waits_for_it():
    inserted, after_done = [], []
    second_insert_started = threading.Event()

    def insert(rows: list) -> int:
        inserted.append(rows[0])
        if rows[0] == "b":
            second_insert_started.set()
        return len(rows)

    def after_commit(rows: list) -> None:
        if rows[0] == "a":  # a serial batcher would insert "b" only after this returned: it would never be set
            assert second_insert_started.wait(WAIT_S), "the next batch was not inserted while this one's ran"
        after_done.append(rows[0])

    batcher = Batcher("test", insert, after_commit, max_rows=1)
    batcher.add(["a", "b", "c"])
    await asyncio.wait_for(batcher.flush(), WAIT_S * 2)
    assert inserted == ["a", "b", "c"]
    assert after_done == ["a", "b", "c"]  # in order, and all of it before flush returned
    assert (batcher.flushed_rows, batcher.dropped_rows) == (3, 0)


async def test_a_failing_after_commit_is_logged_and_the_rows_still_count_as_written(caplog):
    def after_commit(rows: list) -> None:
        raise RuntimeError("redis is down")

    batcher = Batcher("test", len, after_commit, max_rows=2)
    batcher.add([1, 2, 3])
    await asyncio.wait_for(batcher.flush(), WAIT_S)
    assert batcher.flushed_rows == 3
    assert caplog.text.count("after commit failed") == 2


def _blocking_after_commit(done: list):
    """An after-commit that holds batch "a" until released; returns it with its started/release events."""
    started, release = threading.Event(), threading.Event()

    def after_commit(rows: list) -> None:
        if rows[0] == "a":
            started.set()
            release.wait(WAIT_S)
        done.append(rows[0])

    return after_commit, started, release


async def _until(condition, timeout: float = WAIT_S) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_rows_added_while_the_last_after_commit_runs_are_written_without_another_flush():
    """The background task waits for the last batch's after-commit before it ends; a row added meanwhile finds the
    task still running (so none is started for it) and must be written by that task."""
    inserted, done = [], []
    after_commit, started, release = _blocking_after_commit(done)
    batcher = Batcher("test", lambda rows: inserted.extend(rows), after_commit)
    batcher.add(["a"])
    assert await asyncio.to_thread(started.wait, WAIT_S)
    await asyncio.sleep(0.05)  # the task has nothing left to insert: it is waiting for "a"'s after-commit
    batcher.add(["b"])
    release.set()
    assert await _until(lambda: done == ["a", "b"]), (inserted, done)
    assert inserted == ["a", "b"]


async def test_a_flush_cancelled_while_it_waits_does_not_cancel_the_after_commit_work():
    inserted, done = [], []
    after_commit, started, release = _blocking_after_commit(done)
    batcher = Batcher("test", lambda rows: inserted.extend(rows), after_commit, max_rows=1)
    batcher.add(["a"])
    assert await asyncio.to_thread(started.wait, WAIT_S)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(batcher.flush(), 0.05)  # the caller gives up while "a"'s after-commit runs
    release.set()
    batcher.add(["b"])
    await asyncio.wait_for(batcher.flush(), WAIT_S)
    assert (inserted, done) == (["a", "b"], ["a", "b"])


async def test_a_batcher_is_idle_only_with_nothing_buffered_being_written_or_settling():
    """`idle()` lets a caller's flush return at once (trading.outbound_batch.outbound_flush): it must be False from a
    row's add until the row is written and its after-commit work done."""
    writing, written, done = threading.Event(), threading.Event(), []
    after_commit, started, release = _blocking_after_commit(done)

    def insert(rows: list) -> None:
        writing.set()
        assert written.wait(WAIT_S)

    batcher = Batcher("test", insert, after_commit)
    assert batcher.idle()
    batcher.add(["a"])
    assert not batcher.idle(), "a row is buffered"
    assert await asyncio.to_thread(writing.wait, WAIT_S)
    assert not batcher.idle(), "its write is under way"
    written.set()
    assert await asyncio.to_thread(started.wait, WAIT_S)
    assert not batcher.idle(), "its after-commit work runs"
    release.set()
    assert await _until(batcher.idle)
    assert done == ["a"] and batcher.flushed_rows == 1
