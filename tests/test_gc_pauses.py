"""suho.server.GcPauses: the cyclic collector's pauses on /metrics (`suho_gc_pause_seconds`), per generation,
each in its bucket (issue 21: they hold every thread of the process)."""

from __future__ import annotations

import gc

from suho.server import GC_PAUSE_BUCKETS_S, GcPauses


def _samples(pauses: GcPauses) -> dict:
    family = next(pauses.collect())
    return {(s.name, s.labels["generation"], s.labels.get("le")): s.value for s in family.samples}


def test_each_pause_is_counted_in_its_generation_and_bucket():
    ticks = iter([10.0, 10.003, 20.0, 20.0004, 30.0, 32.0])  # 3 ms, 0.4 ms, 2 s
    pauses = GcPauses(clock=lambda: next(ticks))
    for generation in (1, 0, 2):
        pauses("start", {"generation": generation})
        pauses("stop", {"generation": generation, "collected": 0, "uncollectable": 0})

    samples = _samples(pauses)
    assert samples[("suho_gc_pause_seconds_bucket", "1", "0.002")] == 0
    assert samples[("suho_gc_pause_seconds_bucket", "1", "0.005")] == 1
    assert samples[("suho_gc_pause_seconds_bucket", "0", "0.0005")] == 1
    assert samples[("suho_gc_pause_seconds_bucket", "2", str(GC_PAUSE_BUCKETS_S[-1]))] == 0
    assert samples[("suho_gc_pause_seconds_bucket", "2", "+Inf")] == 1
    assert [samples[("suho_gc_pause_seconds_count", g, None)] for g in "012"] == [1, 1, 1]
    assert abs(samples[("suho_gc_pause_seconds_sum", "2", None)] - 2.0) < 1e-9


def test_the_collectors_own_runs_are_counted():
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        gc.callbacks.remove(pauses)

    samples = _samples(pauses)
    assert samples[("suho_gc_pause_seconds_count", "1", None)] >= 1
    assert samples[("suho_gc_pause_seconds_count", "2", None)] >= 1
    assert samples[("suho_gc_pause_seconds_sum", "2", None)] > 0
    for generation in "012":
        buckets = [samples[("suho_gc_pause_seconds_bucket", generation, str(b))] for b in GC_PAUSE_BUCKETS_S]
        assert buckets == sorted(buckets)  # cumulative, as Prometheus reads them
        assert (
            samples[("suho_gc_pause_seconds_bucket", generation, "+Inf")]
            == samples[("suho_gc_pause_seconds_count", generation, None)]
        )
