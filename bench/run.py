"""`make bench`: the benchmark suite against real servers; rewrites docs/BENCHMARKS.md (issue 9).

    python -m bench.run                           the whole suite, then docs/BENCHMARKS.md is rewritten
    python -m bench.run --only ingest             one part (repeatable: --only delivery --only connections);
                                                  prints its section and leaves the docs alone unless --write
    python -m bench.run --only ingest --runs 1    fewer repeats while developing
    python -m bench.run --render                  docs/BENCHMARKS.md again from the last run's raw results
    python -m bench.run --budget 570              what fits in 570 s; later sections are carried over, marked as
                                                  not run (`make bench` runs every section, about 16–18 minutes)

The whole document shows, beside each target figure, the figure of the same name in the document it replaces
("previous"); a section skipped for the time budget keeps its text from that document, marked as not run.

Servers come from DATABASE_URL / REDIS_URL / NATS_URL (`make bench` starts embedded ones when unset). The suite
uses its own database, `bench_suho`, dropped, recreated and migrated at the start: never the dev database. Load
runs in separate processes (bench.ea_load) against a real daphne (bench.stack). Logs and raw results go to
`.state/bench/`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from bench.ingest import CAPACITY_EAS
from bench.stack import ROOT, bench_env

# Run order: issue 21's figures (reconnect storm, daphne vs uvicorn, scale-out) right after the sections they
# build on, so the budget reaches them; asgi reuses ingest's and reconnect's daphne runs. The document keeps the
# section numbers of TITLES whatever the order.
SECTIONS = (
    "codec",
    "ingest",
    "delivery",
    "reconnect",
    "asgi",
    "scaleout",
    "connections",
    "cache",
    "rollup",
    "paths",
    "flood",
    "nats_failover",
)
DOC = ROOT / "docs" / "BENCHMARKS.md"
# `make bench` runs every section (issue 21: every figure in one run; about 16–18 minutes on 2 cores, decision 0027).
# --budget 570 is issue 9's 10-minute run, with room for `make`'s own start-up and the embedded servers.
BUDGET_S = 0
# Skipped, and said so, when less time than this is left: about each one's time on a quiet machine (reconnect's
# three storms of 5,000 with their floors, the database work and a profiled storm, ~120 s; asgi, both servers'
# ingest runs and uvicorn's storm, ~240 s; connections ~105 s; rollup and cache about 80 s and 53 s; paths, with
# section 2's plain figures to reuse, the TimescaleDB database and two ingest runs).
OPTIONAL_MIN_LEFT_S = {
    "reconnect": 120,
    "asgi": 240,
    "scaleout": 60,
    "connections": 110,
    "cache": 60,
    "rollup": 105,
    "paths": 90,
    "flood": 50,
    "nats_failover": 60,
}
TOKENS_RENEW_AFTER_S = 8 * 60  # the EAs' access tokens last 15 minutes; a section takes up to about 4
CODEC_REPEAT = 7  # timed runs of ~50 ms per codec figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this part (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="repeats per figure (default 3)")
    parser.add_argument("--write", action="store_true", help="rewrite docs/BENCHMARKS.md even with --only")
    parser.add_argument(
        "--budget", type=int, default=BUDGET_S,
        help=f"seconds for the whole run; optional sections that would not fit are skipped (default {BUDGET_S}, "
        "0: none is skipped)",
    )  # fmt: skip
    parser.add_argument(
        "--render", action="store_true", help="rewrite docs/BENCHMARKS.md from the last run's .state/bench/results.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        return render()
    sections = args.only or list(SECTIONS)
    started = time.monotonic()

    bench_env()
    import django

    django.setup()
    from django.conf import settings

    from bench import fixtures
    from bench.stack import machine, steal_s
    from suho import cluster

    log_dir = Path(settings.STATE_DIR) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    loads: dict[str, float] = {}  # 1-minute load average as each step starts: other programs show up here
    steals: dict[str, float] = {}  # of the step's core-seconds, the share the hypervisor gave to other machines

    def timed(name: str, fn):
        loads[name] = os.getloadavg()[0]
        t0, steal0 = time.monotonic(), steal_s()
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        value = fn()
        timings[name] = time.monotonic() - t0
        steals[name] = (steal_s() - steal0) / max(timings[name] * (os.cpu_count() or 1), 1e-9)
        print(f"bench: {name} done in {timings[name]:.0f} s", file=sys.stderr, flush=True)
        return value

    timed("database", fixtures.database_create)
    # The JetStream streams, as a deployment's `manage.py nats_setup` makes them: without MT5_OUTBOUND a signal's
    # publish meets the delivery hub's subscription, no ack comes, and every POST waits out the outbox's timeout.
    from suho.streams import streams_ensure

    timed("streams", streams_ensure)
    needed = max(
        (CAPACITY_EAS if {"ingest", "paths", "scaleout", "asgi"} & set(sections) else 0),
        (1_000 + 16 if "delivery" in sections else 0),
        (5_000 if {"connections", "reconnect", "asgi"} & set(sections) else 0),
        (200 if "cache" in sections else 0),
        (10 if "rollup" in sections else 0),
        (101 if "flood" in sections else 0),  # two tenants
        1,
    )
    eas = timed("accounts", lambda: fixtures.eas_create(count=needed))
    tokens_at = time.monotonic()
    # The document this run replaces, kept with the raw results: its figures are the "previous" column, also when
    # --render writes the document again later (by then DOC holds this run's own figures).
    replaced = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    results: dict = {"machine": machine(), "sections": {}, "skipped": {}, "replaced_doc": replaced}
    for name in sections:
        left = args.budget - (time.monotonic() - started)
        if name in OPTIONAL_MIN_LEFT_S and args.only is None and args.budget and left < OPTIONAL_MIN_LEFT_S[name]:
            results["skipped"][name] = f"skipped: {left:.0f} s of the {args.budget} s budget left"
            continue
        if name == "scaleout" and not cluster.haproxy_available():  # not a crash ten minutes into the run
            results["skipped"][name] = f"skipped: {cluster.HAPROXY_MISSING}"
            continue
        if time.monotonic() - tokens_at > TOKENS_RENEW_AFTER_S:
            eas, tokens_at = fixtures.tokens_renew(eas), time.monotonic()
        results["sections"][name] = timed(
            name, lambda name=name, eas=eas: _run_section(name, eas, log_dir, args.runs, results["sections"])
        )
    results["timings"] = timings
    results["loads"] = loads
    results["steals"] = steals
    results["total_s"] = time.monotonic() - started
    results["finished_at"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    results["command"] = argv_display(args)
    (log_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    text = document(results)
    if args.only is not None and args.write and DOC.exists():
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), results), encoding="utf-8")
        print(f"bench: replaced {', '.join(results['sections'])} in {DOC.relative_to(ROOT)}", file=sys.stderr)
    elif args.only is None or args.write:
        DOC.write_text(text, encoding="utf-8")
        print(f"bench: wrote {DOC.relative_to(ROOT)} in {results['total_s']:.0f} s", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def module(name: str):
    return importlib.import_module("bench.bench_codec" if name == "codec" else f"bench.{name}")


def _run_section(name: str, eas: list, log_dir: Path, runs: int, earlier: dict) -> dict:
    if name == "codec":
        return module(name).run(repeat=CODEC_REPEAT)
    if name == "paths":
        return module(name).run(eas=eas, log_dir=log_dir, runs=runs, ingest_result=earlier.get("ingest"))
    if name == "asgi":
        return module(name).run(eas=eas, log_dir=log_dir, runs=runs, earlier=earlier)
    if name in ("ingest", "delivery", "flood", "scaleout", "nats_failover"):
        return module(name).run(eas=eas, log_dir=log_dir, runs=runs)
    if name == "reconnect":
        return module(name).section(eas=eas, log_dir=log_dir, runs=runs)
    if name in ("connections", "cache"):
        return module(name).run(eas=eas, log_dir=log_dir)
    return module(name).run(eas=eas, runs=runs)


def argv_display(args) -> str:
    if args.only is None and args.budget != BUDGET_S:  # a shorter run, some sections carried over
        return f"python -m suho.devstack exec -- .venv/bin/python -m bench.run --budget {args.budget}"
    if args.only is None:
        return "make bench   # = python -m suho.devstack exec -- .venv/bin/python -m bench.run"
    parts = [f"--only {name}" for name in args.only] + ([f"--runs {args.runs}"] if args.runs != 3 else [])
    return ".venv/bin/python -m bench.run " + " ".join(parts)


TITLES = {
    "codec": "1. Codec: binary vs JSON, µs per message (`bench/bench_codec.py`)",
    "ingest": "2–3. Ingest end to end, binary vs JSON on the wire, direct vs bridge mode",
    "delivery": "4. Delivery: NATS publish → EA receive",
    "connections": "5. Connections held by one process",
    "rollup": "6. Balance rollup vs raw history",
    "cache": "7. Cache hit ratios",
    "paths": "8. Native partitions vs TimescaleDB: ingest and rollup on both databases",
    "flood": "9. An EA flooding trade events, and a 600 MB body (`bench/flood.py`)",
    "scaleout": "10. Capacity behind the load balancer: one and two web processes (`bench/scaleout.py`)",
    "nats_failover": "11. A NATS cluster loses a node: how long publishing stalls (`bench/nats_failover.py`)",
    "reconnect": "12. Reconnect storm: EAs with tokens reconnect at once to one process (`bench/reconnect.py`)",
    "asgi": "13. The EA gateway under daphne and under uvicorn (`bench/asgi.py`)",
}


def _codec_targets(report: dict) -> list[tuple[str, str, str, bool]]:
    return [
        (
            f"Codec: {t['target']}",
            f"{t['measured']:.2f}{' µs' if 'µs' in t['target'] else '×'}",
            t["required"],
            t["met"],
        )
        for t in report["targets"]
    ]


def splice(doc: str, results: dict) -> str:
    """The document with this run's sections put in place of their earlier text (or before "Run time"), each saying
    when and how it was measured: `--only … --write` updates part of the document without running the rest."""
    m = results["machine"]
    for name, result in results["sections"].items():
        heading = f"\n## {TITLES[name]}\n"
        block = (
            f"{heading}\nMeasured on its own on {results['finished_at']} UTC (`{results['command']} --write`, "
            f"commit {m['commit']}, {m['cpu']} with {m['cores']} cores, {results['total_s'] / 60:.1f} minutes, "
            f"1-min load average {results['loads'][name]:.2f} at its start); the rest of this document is from the "
            "run above, whose machine the Machine table names.\n\n"
            f"{module(name).markdown(result).rstrip()}\n"
        )
        if heading in doc:
            start = doc.index(heading)
            end = doc.find("\n## ", start + len(heading))
            doc = doc[:start] + block + doc[end:]
        else:
            at = doc.index("\n## Run time\n")
            doc = doc[:at] + block + doc[at:]
    return doc


def render() -> int:
    """Re-render the document from the last run's raw results (after a change to the wording: same figures)."""
    bench_env()  # some sections' modules import models (bench.fixtures)
    import django

    django.setup()
    state_dir = Path(os.environ.get("SUHO_STATE_DIR", ROOT / ".state"))  # settings.STATE_DIR, without Django
    path = state_dir / "bench" / "results.json"
    results = json.loads(path.read_text())
    if "replaced_doc" not in results:  # a run before the "previous" column: the document now is the one replaced
        old = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        written = doc_provenance(old)[0]
        if written is not None and written.date == f"{results['finished_at']} UTC":
            print("bench: docs/BENCHMARKS.md is this run's own: no previous figures to show", file=sys.stderr)
            old = ""
        results["replaced_doc"] = old
        path.write_text(json.dumps(results, indent=1, default=str))  # the next --render shows the same ones
    DOC.write_text(document(results), encoding="utf-8")
    print(f"bench: rendered {DOC.relative_to(ROOT)} from the run of {results['finished_at']} UTC", file=sys.stderr)
    return 0


# The document this run replaces: where its figures come from, its sections, its figure tables.

NOT_RUN = "not run"  # the measured cell of a target carried over from the replaced document
WRITTEN = re.compile(r"Written by the benchmark suite on (\d{4}-\d\d-\d\d \d\d:\d\d UTC)")
CODE_COMMIT = re.compile(r"^\| code \| commit ([0-9a-f]+)", re.MULTILINE)
MEASURED_ALONE = re.compile(r"^Measured on its own on (\d{4}-\d\d-\d\d \d\d:\d\d UTC) \(.*?commit ([0-9a-f]+)")
CARRIED_NOTE = re.compile(
    r"^Not run in this run \(.*?\); the figures below are from its last run: (.+? UTC), commit (\w+)\."
)
CARRIED_CELL = re.compile(r"^(.*) \(from (.+? UTC), commit (\w+)\)$")


class Provenance(NamedTuple):
    date: str  # "2026-12-02 08:45 UTC": sorts by time as text
    commit: str

    def __str__(self) -> str:
        return f"{self.date}, commit {self.commit}"


def doc_sections(doc: str) -> dict[str, str]:
    """The document's `## ` sections: heading (without "## ") → its text up to the next one, heading left out."""
    sections = {}
    for part in re.split(r"^## ", doc, flags=re.MULTILINE)[1:]:
        heading, _, body = part.partition("\n")
        sections[heading.strip()] = body.strip("\n")
    return sections


def doc_provenance(doc: str) -> tuple[Provenance | None, dict[str, Provenance]]:
    """When and at which commit the document's run was (None: not a document the suite wrote), and each section's
    own, for sections measured on their own (`--only … --write`) or carried over from an earlier run."""
    written, commit = WRITTEN.search(doc), CODE_COMMIT.search(doc)
    if written is None or commit is None:
        return None, {}
    run = Provenance(written[1], commit[1])
    sections = {}
    for heading, body in doc_sections(doc).items():
        note = MEASURED_ALONE.match(body) or CARRIED_NOTE.match(body)
        sections[heading] = Provenance(note[1], note[2]) if note else run
    return run, sections


def figure_tables(body: str) -> list[tuple[list[str], list[list[str]]]]:
    """The markdown tables whose first header cell is "figure": (header, rows), each a list of stripped cells."""
    tables = []
    lines = body.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("|") and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1].strip())):
            continue
        header = _cells(line)
        if header[0] != "figure":
            continue
        rows = []
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            rows.append(_cells(row))
        tables.append((header, rows))
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def previous_figures(doc: str) -> list[tuple[str, str, Provenance]]:
    """(figure, value, when measured) for every row of the document's figure tables that has a value: the Targets
    table (its figures as of the run that wrote the document; a carried-over row with the date it carries) and each
    section's tables (as of that section's run)."""
    run, sections = doc_provenance(doc)
    if run is None:
        return []
    figures = []
    for heading, body in doc_sections(doc).items():
        provenance = run if heading == "Targets" else sections[heading]
        for header, rows in figure_tables(body):
            for row in rows:
                if len(row) < 2 or row[1] in ("", "–") or row[1].startswith("skipped"):
                    continue
                if row[1] == NOT_RUN and "previous" in header:
                    if carried := CARRIED_CELL.match(row[header.index("previous")]):
                        figures.append((row[0], carried[1], Provenance(carried[2], carried[3])))
                    continue
                figures.append((row[0], row[1], provenance))
    return figures


def _loose(figure: str) -> str:
    """The figure's name without a closing bracketed note such as " (600/600 delivered)", in lower case."""
    if figure.endswith(")"):
        depth = 0
        for i in range(len(figure) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(figure[i], 0)
            if depth == 0:
                figure = figure[:i]
                break
    return figure.strip().casefold()


def previous_lookup(figures: list[tuple[str, str, Provenance]], figure: str) -> tuple[str, Provenance] | None:
    """The replaced document's value of this figure: the same name, else the same name without a closing note;
    the newest where several match, and none where those disagree (two rows that only differ in the note)."""
    for same in (lambda name: name == figure, lambda name: _loose(name) == _loose(figure)):
        found = [(value, provenance) for name, value, provenance in figures if same(name)]
        if found:
            newest = max(provenance.date for _value, provenance in found)
            candidates = {(value, provenance) for value, provenance in found if provenance.date == newest}
            return candidates.pop() if len(candidates) == 1 else None
    return None


def section_number(name: str) -> str:
    return TITLES[name].split(".", 1)[0]


def carried_section(doc: str, name: str, why: str) -> str | None:
    """A skipped section's text from the replaced document, first saying that it was not run and when it was."""
    run, sections = doc_provenance(doc)
    body = doc_sections(doc).get(TITLES[name])
    if run is None or body is None:
        return None
    paragraphs = body.split("\n\n")
    if MEASURED_ALONE.match(paragraphs[0]) or CARRIED_NOTE.match(paragraphs[0]):
        paragraphs = paragraphs[1:]  # said again below, in this document's words
    note = f"Not run in this run ({why}); the figures below are from its last run: {sections[TITLES[name]]}."
    return "\n\n".join([f"## {TITLES[name]}", note, *paragraphs])


def carried_targets(doc: str, name: str) -> list[tuple[str, str, Provenance, str]]:
    """A skipped section's rows of the replaced document's Targets table: (figure, value, when, target). Only a
    Targets table with a "section" column says which section a row belongs to; an older one gives none."""
    run, _sections = doc_provenance(doc)
    body = doc_sections(doc).get("Targets", "")
    carried = []
    for header, rows in figure_tables(body):
        if run is None or "section" not in header or "target" not in header:
            continue
        for row in rows:
            if len(row) != len(header) or row[header.index("section")] != section_number(name):
                continue
            value, provenance = row[1], run
            if row[1] == NOT_RUN:
                if not (carried_cell := CARRIED_CELL.match(row[header.index("previous")])):
                    continue
                value, provenance = carried_cell[1], Provenance(carried_cell[2], carried_cell[3])
            elif row[1].startswith("skipped") or row[1] in ("", "–"):
                continue
            carried.append((row[0], value, provenance, row[header.index("target")]))
    return carried


def document(results: dict) -> str:
    from bench.stats import met

    m = results["machine"]
    old = results.get("replaced_doc", "")
    old_run = doc_provenance(old)[0]
    previous = previous_figures(old)
    names = sorted([*results["sections"], *results["skipped"]], key=list(TITLES).index)
    carried = {name: carried_section(old, name, why) for name, why in results["skipped"].items()}
    carried = {name: text for name, text in carried.items() if text}
    lines = [
        "# Benchmarks",
        "",
        f"Written by the benchmark suite on {results['finished_at']} UTC in {results['total_s'] / 60:.1f} "
        "minutes; every figure below comes from that run"
        + (
            ', except the Targets table\'s previous column and the sections marked "Not run in this run", which are '
            "copied from the document this run replaced"
            if carried or previous
            else ""
        )
        + " (do not edit by hand: run it again). Each figure is the median over repeated runs with the min–max "
        "spread, unless it says otherwise.",
        "",
        "```",
        results["command"],
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS | {m['os']} (open-file hard limit {m['nofile_hard']:,}) |",
        f"| Python | {m['python']}, Django {m['django']}, daphne {m['daphne']} |",
        f"| PostgreSQL | {m['postgresql']}"
        + (f", TimescaleDB {m['timescaledb']}" if m["timescaledb"] else ", no TimescaleDB (native partitions)")
        + " |",
        f"| Redis | {m['redis']} |",
        f"| NATS | {m['nats']} |",
        f"| code | commit {m['commit']}"
        + (f", with uncommitted changes in {', '.join(m['dirty'])}" if m["dirty"] else "")
        + " |",
        "",
        "Everything runs on this one machine: the servers, the daphne process under test and the load generators "
        "share its cores, so the figures are a floor for a deployment that gives the database its own machine.",
        "",
        "How: a dedicated database (`bench_suho`, dropped, recreated and migrated at the start); the real ASGI server "
        "(`python -m suho.server … suho.asgi:application`: daphne with Suho's limits, production settings, DEBUG off) "
        "started fresh for each run; "
        "simulated EAs in separate processes (`bench/ea_load.py`: sessions opened by `eaclient`, then pre-encoded "
        "frames) speaking the binary protocol over real WebSockets. Bench accounts sit 100 to a tenant; their "
        "sessions are made in bulk and the EAs send HELLO with an access token (an Argon2 check per API key would "
        "make set-up take minutes; the API-key HELLO is timed separately under Delivery). Raw results and server "
        "logs: `.state/bench/`.",
        "",
        "## Targets",
        "",
        "| figure | measured | previous | target | met | section |",
        "|---|---:|---:|---|---|---|",
    ]
    dated: set[Provenance] = set()  # previous figures from a section measured on its own, after old_run
    carried_rows = False
    for name in names:
        number = section_number(name)
        if name in results["skipped"]:
            lines.append(f"| {TITLES[name]} | {results['skipped'][name]} | | | | {number} |")
            for figure, value, provenance, target in carried_targets(old, name):
                lines.append(f"| {figure} | {NOT_RUN} | {value} (from {provenance}) | {target} | – | {number} |")
                carried_rows = True
            continue
        result = results["sections"][name]
        for figure, measured, target, ok in _codec_targets(result) if name == "codec" else module(name).targets(result):
            found = previous_lookup(previous, figure)
            before = "–"
            if found is not None:
                before = found[0] if found[1] == old_run else f"{found[0]} ({found[1].date})"
                if found[1] != old_run:
                    dated.add(found[1])
            lines.append(f"| {figure} | {measured} | {before} | {target} | {met(ok)} | {number} |")
    lines += ["", _previous_note(old_run, dated, carried_rows)]
    for name in names:
        if name in results["sections"]:
            lines += ["", f"## {TITLES[name]}", "", module(name).markdown(results["sections"][name]).rstrip()]
        elif name in carried:
            lines += ["", carried[name]]
    lines += [
        "",
        "## Run time",
        "",
        "The load average shows whether other programs shared the machine during a step; the host's share, whether "
        "this virtual machine's cores were lent to other machines meanwhile (steal time: the same code runs slower, "
        "and the figures of that step with it).",
        "",
        "| step | seconds | 1-min load average at its start | host's share of the cores (steal) |",
        "|---|---:|---:|---:|",
    ]
    steals = results.get("steals", {})  # results from before it was measured have none
    lines += [
        f"| {name} | {seconds:.0f} | {results['loads'][name]:.2f} | "
        f"{f'{steals[name] * 100:.1f}%' if name in steals else '–'} |"
        for name, seconds in results["timings"].items()
    ]
    lines.append(f"| total | {results['total_s']:.0f} | | |")
    return "\n".join(lines) + "\n"


def _previous_note(old_run: Provenance | None, dated: set[Provenance], carried_rows: bool) -> str:
    """Under the Targets table: where its previous column (and any target carried over) comes from."""
    if old_run is None:
        return "Previous: none, there was no earlier document written by the suite."
    note = (
        "Previous: the figure of the same name (or the same name without a closing bracketed note) in the "
        f"docs/BENCHMARKS.md this run replaced, written by the run of {old_run}"
        + (
            f", or, where a date follows it, from that document's section measured on its own then "
            f"({'; '.join(str(p) for p in sorted(dated))})"
            if dated
            else ""
        )
        + "; – where it had none."
    )
    if carried_rows:
        note += f' A "{NOT_RUN}" row is a skipped section\'s target as that document had it, never measured here.'
    return note


if __name__ == "__main__":
    sys.exit(main())
