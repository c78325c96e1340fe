"""bench.stack.thread_schedstat: the per-thread scheduler figures the ingest bench reads for the event loop thread
(time on a core, time runnable without one) name each thread of the process and grow with the work it does."""

from __future__ import annotations

import os
import threading
import time

from bench.stack import thread_schedstat


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_busy_thread_shows_its_time_on_a_core_and_an_idle_one_none():
    ready, go, done, finish = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    ids: dict[str, int] = {}

    def busy() -> None:
        ids["busy"] = threading.get_native_id()
        ready.set()
        go.wait()
        _spin(0.2)
        done.set()
        finish.wait()  # alive until read: a thread that has exited is gone from /proc

    def idle() -> None:
        ids["idle"] = threading.get_native_id()
        finish.wait()

    workers = [threading.Thread(target=busy), threading.Thread(target=idle)]
    for worker in workers:
        worker.start()
    ready.wait()
    while "idle" not in ids:
        time.sleep(0.01)
    before = thread_schedstat(os.getpid())
    go.set()
    done.wait(10)
    after = thread_schedstat(os.getpid())
    finish.set()
    for worker in workers:
        worker.join()

    assert os.getpid() in after  # the main thread's id is the process's
    ran_busy = after[ids["busy"]][0] - before[ids["busy"]][0]
    ran_idle = after[ids["idle"]][0] - before[ids["idle"]][0]
    assert 0.15 <= ran_busy < 5
    assert ran_idle < 0.05
    assert all(ran >= 0 and waited >= 0 for ran, waited in after.values())


def test_a_process_that_is_gone_has_no_threads():
    assert thread_schedstat(2**22 + 12345) == {}
