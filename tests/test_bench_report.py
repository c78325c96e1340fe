"""docs/BENCHMARKS.md as bench.run writes it: the previous figures beside the new ones, skipped sections carried over
from the document a run replaces, `--only … --write` splicing; and bench.asgi reusing daphne's runs. Pure: synthetic
results and markdown, no servers, no database."""

from __future__ import annotations

import os

from bench import asgi, ingest, reconnect, run

RECONNECT = run.TITLES["reconnect"]
OLD_DOC = f"""# Benchmarks

Written by the benchmark suite on 2026-12-02 08:45 UTC in 7.8 minutes; every figure below comes from that run.

## Machine

| | |
|---|---|
| CPU | a CPU, 2 cores |
| code | commit 135565e |

## Targets

| figure | measured | target | met |
|---|---:|---|---|
| Codec: v1 ingest decode µs per packet | 0.95 µs | < 2 | **yes** |
| Signal POST → EA socket p99, 1 EA connected | 99.0 ms | < 10 ms | **no** |
| Reconnect storm: 5,000 EAs authenticated and resynced | 85.7 s | ≤ 10 s for 5,000 | **no** |

## 1. Codec: binary vs JSON, µs per message (`bench/bench_codec.py`)

Old codec text.

## 4. Delivery: NATS publish → EA receive

Measured on its own on 2026-12-03 22:54 UTC (`.venv/bin/python -m bench.run --only delivery --write`, commit 2186c36, \
2.1 minutes, 1-min load average 1.69 at its start); the rest of this document is from the run above.

| figure | median | spread | target | met |
|---|---:|---|---|---|
| signal POST → EA socket p99, 1,000 EAs connected (600/600 delivered) | 347.3 ms | 1 run | < 10 ms | **no** |

## {RECONNECT}

Measured on its own on 2026-12-03 10:11 UTC (`.venv/bin/python -m bench.run --only reconnect --write`, commit 185036f, \
1.9 minutes, 1-min load average 8.48 at its start); the rest of this document is from the run above.

| figure | value | before (commit 020b6e8) | target | met |
|---|---:|---:|---|---|
| 5,000 EAs reconnect at once: the last one resynced | 85.7 s | 259.0 s | ≤ 10 s | **no** |

Old reconnect notes.

## Run time

| step | seconds | 1-min load average at its start |
|---|---:|---:|
| total | 468 | |
"""


def codec_report(decode_us: float) -> dict:
    return {
        "python": "3.11.7",
        "implementation": "CPython",
        "processor": "x86_64",
        "orjson": "3.13.0",
        "repeat": 7,
        "results": [
            {
                "payload": "v1 price",
                "op": "decode",
                "method": "binary",
                "bytes": 144,
                "median_us": decode_us,
                "min_us": decode_us,
                "max_us": decode_us,
            },
        ],
        "targets": [
            {"target": "v1 ingest decode µs per packet", "measured": decode_us, "required": "< 2", "met": True},
        ],
    }


def reconnect_result(last_s: float) -> dict:
    return {"eas": 5_000, "resynced": 5_000, "all_resynced_s": last_s, "resync_p50_s": 1.0, "resync_p99_s": 2.0,
            "hellos_per_s": 5_000 / last_s, "server_cpu_s": 9.0, "refused": 0, "refusals": [],
            "connect_failures": 0, "load_processes": 4}  # fmt: skip


def suite_results(replaced_doc: str, *, finished_at: str = "2026-12-05 10:00", codec_us: float = 1.25) -> dict:
    """A whole-suite run in which codec ran and reconnect was skipped for the budget."""
    return {
        "machine": {"cpu": "a CPU", "cores": 2, "memory_gib": 8, "os": "Linux", "nofile_hard": 20_000,
                    "python": "CPython 3.11.7", "django": "5.2", "daphne": "4.2.3", "postgresql": "18.6",
                    "timescaledb": None, "redis": "6.2", "nats": "2.15", "commit": "abc1234", "dirty": []},
        "sections": {"codec": codec_report(codec_us)},
        "skipped": {"reconnect": "skipped: 20 s of the 570 s budget left"},
        "timings": {"codec": 15.0},
        "loads": {"codec": 0.4},
        "total_s": 550.0,
        "finished_at": finished_at,
        "command": "make bench",
        "replaced_doc": replaced_doc,
    }  # fmt: skip


def targets_rows(doc: str) -> dict[str, list[str]]:
    header, rows = run.figure_tables(run.doc_sections(doc)["Targets"])[0]
    assert header == ["figure", "measured", "previous", "target", "met", "section"]
    return {row[0]: row for row in rows}


def test_previous_column_shows_the_replaced_documents_figure_of_the_same_name():
    doc = run.document(suite_results(OLD_DOC))

    assert targets_rows(doc)["Codec: v1 ingest decode µs per packet"][1:3] == ["1.25 µs", "0.95 µs"]
    assert "written by the run of 2026-12-02 08:45 UTC, commit 135565e" in doc


def test_previous_figure_from_a_section_measured_on_its_own_carries_its_date():
    figures = run.previous_figures(OLD_DOC)

    found = run.previous_lookup(figures, "Signal POST → EA socket p99, 1,000 EAs connected")

    assert found == ("347.3 ms", run.Provenance("2026-12-03 22:54 UTC", "2186c36"))


def test_a_loose_match_that_two_rows_share_gives_no_previous_figure():
    when = run.Provenance("2026-12-02 08:45 UTC", "135565e")
    figures = [("server CPU (daphne (suho.server))", "0.3 s", when), ("server CPU (uvicorn)", "0.2 s", when)]

    assert run.previous_lookup(figures, "server CPU (daphne (suho.server))") == ("0.3 s", when)
    assert run.previous_lookup(figures, "server CPU (hypercorn)") is None


def test_without_a_replaced_document_the_previous_column_is_empty():
    doc = run.document(suite_results(""))

    assert targets_rows(doc)["Codec: v1 ingest decode µs per packet"][2] == "–"
    assert "Previous: none" in doc
    assert "Not run in this run" not in doc


def test_skipped_section_keeps_its_last_text_marked_as_not_run():
    doc = run.document(suite_results(OLD_DOC))
    section = run.doc_sections(doc)[RECONNECT]

    assert section.startswith(
        "Not run in this run (skipped: 20 s of the 570 s budget left); the figures below are from its last run: "
        "2026-12-03 10:11 UTC, commit 185036f."
    )
    assert "| 5,000 EAs reconnect at once: the last one resynced | 85.7 s |" in section
    assert "Old reconnect notes." in section
    assert "Measured on its own" not in section
    assert targets_rows(doc)[RECONNECT][1] == "skipped: 20 s of the 570 s budget left"


def test_an_old_targets_table_without_section_column_carries_no_target_rows():
    rows = targets_rows(run.document(suite_results(OLD_DOC)))

    assert "Reconnect storm: 5,000 EAs authenticated and resynced" not in rows


def test_a_section_skipped_twice_keeps_the_date_of_its_last_run_and_its_targets():
    first = suite_results(OLD_DOC, finished_at="2026-12-05 10:00", codec_us=1.25)
    first["skipped"] = {}
    first["sections"]["reconnect"] = reconnect_result(40.0)
    measured = run.document(first)
    second = run.document(suite_results(measured, finished_at="2026-12-06 10:00", codec_us=1.5))
    third = run.document(suite_results(second, finished_at="2026-12-07 10:00", codec_us=1.75))

    for doc in (second, third):
        rows = targets_rows(doc)
        storm = rows["Reconnect storm: 5,000 EAs authenticated and resynced"]
        assert storm[1:3] == ["not run", "40.0 s (from 2026-12-05 10:00 UTC, commit abc1234)"]
        assert storm[4:] == ["–", "12"]
        assert run.doc_sections(doc)[RECONNECT].startswith(
            "Not run in this run (skipped: 20 s of the 570 s budget left); the figures below are from its last "
            "run: 2026-12-05 10:00 UTC, commit abc1234."
        )
        assert 'A "not run" row is a skipped section' in doc
    assert targets_rows(third)["Codec: v1 ingest decode µs per packet"][1:3] == ["1.75 µs", "1.50 µs"]


def test_splice_replaces_a_carried_section_and_leaves_the_rest():
    doc = run.document(suite_results(OLD_DOC))
    alone = {
        "machine": {"commit": "def5678", "cpu": "another CPU", "cores": 2},
        "sections": {"reconnect": reconnect_result(9.5)},
        "loads": {"reconnect": 0.5},
        "total_s": 90.0,
        "finished_at": "2026-12-06 09:00",
        "command": ".venv/bin/python -m bench.run --only reconnect",
    }

    spliced = run.splice(doc, alone)

    section = run.doc_sections(spliced)[RECONNECT]
    assert section.startswith("Measured on its own on 2026-12-06 09:00 UTC")
    assert "commit def5678, another CPU with 2 cores" in section.splitlines()[0]  # it may not be the run's machine
    assert "Not run in this run" not in section
    assert "9.5 s" in section
    assert spliced.split(f"## {RECONNECT}")[0] == doc.split(f"## {RECONNECT}")[0]
    assert run.doc_provenance(spliced)[1][RECONNECT] == run.Provenance("2026-12-06 09:00 UTC", "def5678")


def load_run_result(cpu_s_per_10k: float) -> dict:
    return {"committed_ticks_s": 20_000.0, "server_cpu_s_per_10k": cpu_s_per_10k, "p99_ms": 100.0,
            "live_p99_ms": 20.0, "closed": []}  # fmt: skip


def test_asgi_alternates_both_servers_capacity_runs_and_takes_daphnes_storm_from_section_12(monkeypatch, tmp_path):
    started = []
    cpu = {asgi.Daphne: 0.3, asgi.Uvicorn: 0.12}
    monkeypatch.setattr(
        asgi, "load_run", lambda eas, log_dir, **kw: started.append(kw["server"]) or load_run_result(cpu[kw["server"]])
    )
    monkeypatch.setattr(asgi.reconnect, "run", lambda **kw: started.append(kw["server"]) or reconnect_result(12.0))
    earlier = {
        "ingest": {"capacity": [load_run_result(0.9)] * 3, "binary": [load_run_result(0.9)] * 3},  # not used
        "reconnect": reconnect_result(40.0),
    }

    result = asgi.run(eas=list(range(200)), log_dir=tmp_path, runs=3, earlier=earlier)

    # two rounds of (capacity, 60 %) per server, daphne's and uvicorn's in turn; then uvicorn's storm only
    assert started == [asgi.Daphne, asgi.Daphne, asgi.Uvicorn, asgi.Uvicorn] * 2 + [asgi.Uvicorn]
    assert result["storms"][asgi.DAPHNE] == earlier["reconnect"]
    text = asgi.markdown(result)
    assert "reconnect storm was not run again here: it is section 12's" in text
    assert "spends 60% less server CPU per tick" in text
    targets = {figure: (measured, target, ok) for figure, measured, target, ok in asgi.targets(result)}
    assert targets[f"server CPU per 10k ticks at capacity ({asgi.DAPHNE})"] == ("0.300 s", "≤ 0.15 s", False)
    assert targets["server CPU per 10k ticks at capacity (uvicorn (websockets-sansio, uvloop))"][2] is True
    assert targets[f"reconnect storm: 5,000 EAs resynced ({asgi.DAPHNE})"] == ("40.0 s", "≤ 10 s", False)


def test_asgi_on_its_own_runs_daphne_too(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(
        asgi, "load_run", lambda eas, log_dir, **kw: started.append(kw["server"]) or load_run_result(0.12)
    )
    monkeypatch.setattr(asgi.reconnect, "run", lambda **kw: started.append(kw["server"]) or reconnect_result(9.0))

    result = asgi.run(eas=list(range(200)), log_dir=tmp_path, runs=2, earlier={})

    assert started.count(asgi.Daphne) == 3  # a capacity run, a 60 % run, a storm
    assert result["reused"] == []
    assert "was not run again" not in asgi.markdown(result)


def test_ticks_sent_count_only_the_whole_100_ms_buckets_inside_the_window():
    from bench import ingest

    loads = [{"ticks_by_100ms": {"9": 800, "10": 80, "11": 80, "29": 80, "30": 800}},  # JSON keys are strings
             {"ticks_by_100ms": {"10": 40, "29": 40}}]  # fmt: skip
    # 1.05 s → 3.0 s: buckets 11 … 29 (1.1 s to 3.0 s), 1.9 s; bucket 10 starts before the window, 30 at its end
    assert ingest._sent_ticks_s(loads, 1_050_000, 3_000_000) == (80 + 80 + 40) / 1.9


def test_the_storm_splits_its_cpu_per_ea_into_the_server_stacks_floor_and_the_gateways_part():
    result = {**reconnect_result(20.0), "cores": {"machine": 1.7, "server": 0.75, "postgres": 0.5, "load": 0.4},
              "floor": {"eas": 5_000, "answered": 5_000, "all_answered_s": 5.2, "server_cpu_s": 4.0,
                        "server_cores": 0.7, "failures": 0}}  # fmt: skip

    text = reconnect.markdown(result)

    assert "| … its server CPU: per EA / the storm's | 0.80 ms / 4.0 s |" in text
    # 9.0 s for 5,000 EAs is 1.80 ms each: 0.80 ms the stack's, 1.00 ms the gateway's, 5.0 s of a storm at one core
    assert "Of that, 0.80 ms is the server stack's own (the floor above, 5.2 s for its storm) and 1.00 ms" in text
    assert "would take 5.0 s of the storm" in text
    # the server's 9.0 s at 0.75 cores: a 12 s window; 1.7 cores for it over 5,000 EAs is 4.08 ms each
    assert ("spent 4.08 ms of CPU per EA (the server 1.80, PostgreSQL 1.20, the load processes 0.96): at "
            f"{os.cpu_count()} cores fully busy that is at most {os.cpu_count() * 1000 / 4.08:,.0f} EAs/s, and 1,000/s "
            f"needs at most {os.cpu_count():.2f} ms per EA") in text  # fmt: skip
    assert "the floor" not in reconnect.markdown(reconnect_result(20.0))  # a result from before it was measured


def storm_run(last_s: float | None, floor_s: float, *, host: float = 0.0) -> dict:
    """One storm's result as bench.reconnect.run gives it, with its floor: `last_s` None when not every EA resynced."""
    result = reconnect_result(last_s or 20.0)
    result.update(all_resynced_s=last_s, resynced=5_000 if last_s else 4_990,
                  cores={"machine": 1.6, "server": 0.85, "postgres": 0.5, "load": 0.1, "host": host},
                  floor={"eas": 5_000, "answered": 5_000, "all_answered_s": floor_s, "server_cpu_s": 3.0,
                         "server_cores": 0.7, "failures": 0})  # fmt: skip
    return result


def test_the_storm_runs_in_turn_with_its_floor_and_the_median_run_stands_for_the_section(monkeypatch, tmp_path):
    started = []
    storms = iter([storm_run(18.0, 0, host=0.001), storm_run(23.0, 0, host=0.31), storm_run(14.0, 0)])
    floors = iter([3.8, 5.4, 3.9])

    def storm(**kw):
        started.append("storm")
        return {**next(storms), "eas": len(kw["eas"][: kw.get("count", reconnect.TARGET_EAS)])}

    def floor(**kw):
        started.append("floor")
        return {"eas": kw["count"], "answered": kw["count"], "all_answered_s": next(floors), "server_cpu_s": 3.0,
                "server_cores": 0.7, "failures": 0}  # fmt: skip

    monkeypatch.setattr(reconnect, "run", storm)
    monkeypatch.setattr(reconnect.storm_floor, "run", floor)
    monkeypatch.setattr(reconnect.hello_db, "run", lambda **kw: None)
    monkeypatch.setattr(reconnect.profile, "available", lambda: False)

    result = reconnect.section(eas=list(range(5_000)), log_dir=tmp_path, runs=3)

    assert started == ["storm", "floor"] * 3
    assert result["all_resynced_s"] == 18.0 and result["floor"]["all_answered_s"] == 3.8  # the median, its own floor
    text = reconnect.markdown(result)
    assert "| 18.0 s | 259.0 s | ≤ 10 s | **no** |" in text
    # a host share that rounds to 0.00 cores is not shown
    assert "| 18.0 s / 3.8 s, 23.0 s / 5.4 s (host 0.31 cores), 14.0 s / 3.9 s | | | |" in text
    assert "3 runs, each storm followed by its floor" in text


def test_a_storm_that_left_eas_unsynced_counts_as_the_slowest_and_an_even_count_takes_the_slower_middle():
    assert reconnect.median_round([storm_run(None, 3.8), storm_run(12.0, 3.6)])["all_resynced_s"] is None
    three = [storm_run(None, 3.8), storm_run(15.0, 3.6), storm_run(12.0, 3.7)]
    assert reconnect.median_round(three)["all_resynced_s"] == 15.0
    text = reconnect.markdown(reconnect.median_round(three))
    assert "4,990 resynced / 3.8 s" in text


def test_a_single_storm_says_one_run_and_lists_no_runs():
    text = reconnect.markdown(reconnect.median_round([storm_run(12.0, 3.6)]))

    assert text.rstrip().endswith("One run.")
    assert "each run in turn" not in text


def test_the_run_time_table_shows_the_hosts_share_of_the_cores_per_step():
    results = {**suite_results(OLD_DOC), "timings": {"codec": 15.0, "ingest": 200.0},
               "loads": {"codec": 0.4, "ingest": 0.7}, "steals": {"ingest": 0.125}}  # fmt: skip

    doc = run.document(results)

    assert "| ingest | 200 | 0.70 | 12.5% |" in doc
    assert "| codec | 15 | 0.40 | – |" in doc  # not measured: not shown as none


def test_the_delivery_bench_keeps_each_posts_timings_beside_its_percentiles():
    """bench.delivery._posts: a run whose tail stands out can be taken apart later; a POST whose signal never reached
    the EA keeps its 201 time and no EA time, and is not in the EA percentiles."""
    from bench import delivery

    posts = {"post/1000/0": [
        {"sent_us": 1_000_000, "answered_us": 1_012_000, "http_status": 201, "ref": "a", "status": "pending"},
        {"sent_us": 1_020_000, "answered_us": 1_150_000, "http_status": 201, "ref": "b", "status": "pending"},
        {"sent_us": 1_040_000, "answered_us": 1_048_000, "http_status": 201, "ref": "c", "status": "pending"},
    ]}  # fmt: skip
    received = {"a": (0, 1_009_000), "b": (0, 1_133_000)}  # c never arrived
    result = delivery._posts(posts, received)["post/1000/0"]
    assert result["samples"] == [[0.0, 9.0, 12.0], [20.0, 113.0, 130.0], [40.0, None, 8.0]]
    assert result["delivered"] == 2 and result["created"] == 3


def test_a_missed_capacity_goal_sets_the_machines_cpu_per_tick_against_what_the_goal_allows():
    run_ = {"committed_ticks_s": 38_000.0, "machine_busy_cores": 1.9, "server_cpu_cores": 0.76,
            "postgres_cpu_cores": 0.57, "load_cpu_cores": 0.38}  # fmt: skip
    text = ingest._machine_budget([run_, {**run_, "machine_busy_cores": 2.0}, {**run_, "machine_busy_cores": 1.8}])
    # median 1.9 cores at 38,000 ticks/s: 0.5 s of CPU per 10k ticks; 2 cores then carry at most 40,000 ticks/s
    assert text.startswith(
        "Everything on the machine together spent 0.500 s of CPU per 10k ticks at capacity (the server 0.200, "
        "PostgreSQL 0.150, the load generators 0.100)"
    )
    cores = os.cpu_count()
    assert f"at {cores} cores fully busy that is at most {cores / 0.5 * 10_000:,.0f} ticks/s" in text
    assert f"40,000 ticks/s needs at most {cores / 4:.3f} s per 10k ticks" in text


def test_the_delivery_bench_sets_a_posts_cpu_beside_the_missed_p99():
    """bench.delivery: the server's CPU per signal POST at 1,000 EAs, as run() keeps it and as results.json gives it
    back (JSON keys are text); no figure, no sentence."""
    from bench import delivery

    for cpu in ({1000: 6.24, 1: 5.0}, {"1000": 6.24, "1": 5.0}):
        text = delivery._post_cpu_why({"post_cpu_ms": cpu})
        assert text.startswith(" Each POST costs the server 6.2 ms of CPU (row above)")
    assert delivery._post_cpu_why({}) == "" and delivery._post_cpu_why({"post_cpu_ms": {1: 5.0}}) == ""


def test_the_storm_shows_how_many_eas_each_of_the_servers_resync_reads_served():
    counted = {**storm_run(12.0, 3.6), "resync_reads": {"resyncs": 5_000, "reads": 415}}

    assert "| 12.0 (5,000 in 415) | 1 | | |" in reconnect.markdown(counted)
    assert "per database read" not in reconnect.markdown(storm_run(12.0, 3.6))  # from before it was counted
    assert "per database read" not in reconnect.markdown({**counted, "resync_reads": None})  # /metrics unreadable


def test_the_storm_shows_how_many_hellos_each_claim_round_trip_served_once_counted():
    counted = {"resyncs": 5_000, "reads": 415, "hellos": 5_000, "hello_round_trips": 320}

    text = reconnect.markdown({**storm_run(12.0, 3.6), "resync_reads": counted})

    assert "| … token HELLOs claimed per database round trip" in text and "| 15.6 (5,000 in 320) | 1 | | |" in text
    older = {key: counted[key] for key in ("resyncs", "reads")}  # a result from before the claims were shared
    assert "claimed per database round trip" not in reconnect.markdown({**storm_run(12.0, 3.6), "resync_reads": older})
