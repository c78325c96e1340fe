"""The volume batcher's pipeline: a batch's after-commit work (cache, NATS) overlaps the next batch's insert, runs in
batch order, and a caller's flush returns only once all of it is done."""

from __future__ import annotations

import asyncio
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
