"""The gateway's shared round trips (trading.gateway.SharedRoundTrips), as the resync reads use them: the EAs that
ask while no database thread has taken their reads yet are read in one call (`ea_resyncs`, one round trip), each EA
gets its own outcome, a caller that left is not read for, and a failed round trip reaches every caller. The reads
themselves are tested against the database in test_resync_reads.py, the token HELLOs' claims in
test_token_hellos.py; here the database thread is held back so the test decides when it runs."""

from __future__ import annotations

import asyncio

import pytest

from trading import gateway
from trading.connection import RESYNCS_PER_ROUND_TRIP
from trading.gateway import SharedRoundTrips


def outcomes_by_account(batches: list):
    def read_many(pairs: list[tuple]) -> list:
        batches.append(list(pairs))
        return [KeyError(account) if account == "gone" else f"resync of {account}" for _tenant, account in pairs]

    return read_many


async def started(coroutines) -> list[asyncio.Task]:
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    await asyncio.sleep(0)  # each has asked
    return tasks


async def test_reads_that_wait_for_a_database_thread_are_read_in_one_call_each_getting_its_own(held):
    batches: list = []
    reads = SharedRoundTrips(outcomes_by_account(batches), per_round_trip=RESYNCS_PER_ROUND_TRIP)
    tasks = await started(reads.ask(("t1", account)) for account in ("a", "b", "gone"))
    assert len(held.submitted) == 1  # one run for the three

    await held.run_next()

    assert batches == [[("t1", "a"), ("t1", "b"), ("t1", "gone")]]
    assert (reads.calls, reads.round_trips) == (3, 1)  # what /metrics reports for the process's reads
    assert await tasks[0] == "resync of a" and await tasks[1] == "resync of b"
    with pytest.raises(KeyError):
        await tasks[2]


async def test_a_read_asked_after_a_thread_took_the_waiting_ones_gets_a_run_of_its_own(held):
    batches: list = []
    reads = SharedRoundTrips(outcomes_by_account(batches), per_round_trip=RESYNCS_PER_ROUND_TRIP)
    first = await started([reads.ask(("t1", "a"))])
    running = asyncio.ensure_future(held.run_next())
    await first[0]
    await running
    second = await started([reads.ask(("t2", "b"))])
    assert len(held.submitted) == 1

    await held.run_next()

    assert batches == [[("t1", "a")], [("t2", "b")]]
    assert await second[0] == "resync of b"


async def test_a_caller_that_left_before_the_read_is_not_read_for(held):
    batches: list = []
    reads = SharedRoundTrips(outcomes_by_account(batches), per_round_trip=RESYNCS_PER_ROUND_TRIP)
    left, stays = await started(reads.ask(("t1", account)) for account in ("a", "b"))
    left.cancel()
    await asyncio.sleep(0)

    await held.run_next()

    assert batches == [[("t1", "b")]]
    assert await stays == "resync of b"
    assert left.cancelled()


async def test_a_failed_round_trip_reaches_every_caller_and_the_next_reads_go_on(held):
    calls = []

    def read_many(pairs):
        calls.append(pairs)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return [f"resync of {account}" for _tenant, account in pairs]

    reads = SharedRoundTrips(read_many, per_round_trip=RESYNCS_PER_ROUND_TRIP)
    tasks = await started(reads.ask(("t1", account)) for account in ("a", "b"))
    await held.run_next()
    for task in tasks:
        with pytest.raises(ConnectionError):
            await task

    again = await started([reads.ask(("t1", "a"))])
    await held.run_next()
    assert await again[0] == "resync of a"


async def test_a_read_of_the_wrong_count_fails_every_caller_instead_of_leaving_one_waiting(held):
    reads = SharedRoundTrips(lambda pairs: ["only one"], per_round_trip=RESYNCS_PER_ROUND_TRIP)
    tasks = await started(reads.ask(("t1", account)) for account in ("a", "b"))
    await held.run_next()
    for task in tasks:
        with pytest.raises(RuntimeError, match="1 outcomes for 2 callers"):
            await task


async def test_with_the_database_threads_shut_down_the_caller_gets_an_error_and_a_later_read_is_submitted(
    monkeypatch, held
):
    batches: list = []
    reads = SharedRoundTrips(outcomes_by_account(batches), per_round_trip=RESYNCS_PER_ROUND_TRIP)

    def shut_down(func):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(gateway, "db_thread_submit", shut_down)
    with pytest.raises(RuntimeError, match="after interpreter shutdown"):
        await reads.ask(("t1", "a"))

    monkeypatch.setattr(gateway, "db_thread_submit", held)
    later = await started([reads.ask(("t1", "b"))])
    await held.run_next()
    assert await later[0] == "resync of b" and batches == [[("t1", "b")]]


async def test_the_round_trips_counted_are_one_per_64_eas_of_a_run(held):
    reads = SharedRoundTrips(
        lambda pairs: [f"resync of {account}" for _tenant, account in pairs], per_round_trip=RESYNCS_PER_ROUND_TRIP
    )
    tasks = await started(reads.ask(("t1", index)) for index in range(65))
    await held.run_next()
    await asyncio.gather(*tasks)
    assert (reads.calls, reads.round_trips) == (65, 2)  # trading.connection.RESYNCS_PER_ROUND_TRIP each


@pytest.mark.parametrize("made_if_cancelled", [True, False])
async def test_a_cancelled_callers_call_is_made_only_when_it_must_not_be_lost(held, made_if_cancelled):
    """A draining process cancels what is left of its EAs' applications at its deadline: their disconnects, asked for
    and waiting for a database thread, are still recorded (`gateway.disconnects` is made so); a resync read for an
    EA that is gone is not worth a round trip."""
    made: list = []
    calls = SharedRoundTrips(lambda keys: made.extend(keys) or [None] * len(keys), per_round_trip=32,
                             made_if_cancelled=made_if_cancelled)  # fmt: skip
    left, stays = await started(calls.ask(key) for key in ("left", "stays"))
    left.cancel()
    await asyncio.sleep(0)

    await held.run_next()

    assert made == (["left", "stays"] if made_if_cancelled else ["stays"])
    assert await stays is None and left.cancelled()
