"""Where the server's time goes: `py-spy record` on the daphne process, summarised per thread and per stage.

py-spy samples every thread's Python stack (`--nonblocking`: the server is not paused). Without `--idle`, only
samples of a thread that was running count, so a thread's share is the fraction of wall time it was busy: above
~100 % together, threads contend for the one GIL. With `gil=True` (`--gil`) only the thread holding the GIL is
sampled: the shares are then of those samples (what the process's one core of Python went to), and `gil_held` is
their count over the samples a busy GIL would have given (py-spy misses some, so it is a lower bound). A sample
belongs to the first stage (in STAGES order) that one of its frames names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

# (stage, pattern on a frame "function (file:line)"): a sample counts for the first stage any of its frames matches.
STAGES = [
    ("Argon2 (API-key check)", r"argon2"),
    ("batch INSERT + commit (incl. waiting for PostgreSQL)", r"broker_quotes_insert|_insert_grouped"),
    ("after commit: cache (Redis) writes", r"cache_set_many"),
    ("NATS publish", r"publish_many|publish_batch|publish_block|Bus\.publish|Client\.publish|_flusher"),
    ("after commit: per-tick JSON for cache and NATS", r"_after_commit"),
    ("database: ACK / SENT bookkeeping (batched)", r"outbound_bookkeeping_apply|signals_mark_sent|signals_ack_rec"),
    ("consumer: ACK / SENT into the batch", r"signal_sent_add|ack_add"),
    (
        "database: HELLO, resync, session checks",
        r"ea_resync|ea_session_(claim|active)|ea_disconnect|_each_its_own_transaction|ea_auth",
    ),
    ("channels: close_old_connections per message (sync thread)", r"\bclose_old_connections"),
    ("other database work", r"django/db|psycopg"),
    ("binproto encode/decode", r"binproto/"),
    ("consumer: outbound message", r"deliver_json|_send_outbound|_send_message"),
    ("consumer: tick rows into the batcher", r"_v1_ticks|GatewaySession\._ticks|Batcher\.add|volume_add"),
    ("delivery hub (NATS → socket owner)", r"DeliveryHub|_on_message"),
    (
        "thread hand-off per message (channels dispatch → close_old_connections, SyncToAsync, the db_thread executor)",
        r"aclose_old_connections|asgiref/sync|concurrent/futures",
    ),
    ("WebSocket framing and masking (autobahn)", r"autobahn/"),
    ("consumer and session: the rest of a frame's handling (ours)", r"GatewaySession\.|EAConsumer\.(receive|_perform)"),
    (
        "Channels/daphne dispatch",
        r"channels/|daphne/(ws_protocol|http_protocol|utils)|Server\.(application_checker|handle_reply|timeout_checker)",
    ),
    ("Twisted I/O", r"twisted/"),
    ("asyncio loop", r"asyncio/|selectors"),
]


# A reconnect storm sampled with `--gil`: what holds the one core the server's Python can use, tried before STAGES
# (the most specific first: a sample in psycopg under Django's cursor wrapper is psycopg's).
STORM_GIL_STAGES = [
    ("HELLO: the access token's signature and claims (simplejwt, PyJWT)", r"ea_access_verify"),
    ("HELLO: the 4008 hold check (Redis)", r"ea_rate_limit_hold_left_s"),
    ("psycopg: parameters bound into the SQL, the query sent, the results read", r"psycopg/"),
    ("psycopg_pool: a connection lent and handed back", r"psycopg_pool/"),
    ("Django ORM: model instances from the resync's rows", r"django/db/models"),
    ("Django: connection and cursor wrappers", r"django/db/|django/utils/asyncio|asgiref/local"),
    ("HELLO, resync, disconnect: ours around the database calls", r"trading/connection|suho/sql|signals/messages"),
    ("thread hand-off (the db_thread executor)", r"concurrent/futures|suho/asyncdb"),
    ("the WebSocket layer: handshake, framing, masking (autobahn, daphne's WebSocket protocol)",
     r"\(autobahn/|\(daphne/ws_protocol"),
    ("WebSocket handshake: the HTTP request (Twisted, daphne)", r"twisted/web/http|daphne/http_protocol"),
]  # fmt: skip

# The ML engine's signal POST: for samples inside a request (REQUEST_FRAME), tried before STAGES. A sample waiting
# for PostgreSQL inside the intake counts as a round trip, one compiling SQL as the ORM, and so on.
REQUEST_FRAME = r"django/core/handlers/"
SIGNAL_POST_STAGES = [
    ("signal POST, after commit: JetStream publish and its ack, outbox row marked", r"_publish_committed"),
    ("signal POST: waiting for PostgreSQL (round trips, commit)", r"psycopg/"),
    ("signal POST: ORM (SQL compilation, model instances)", r"django/db/"),
    ("signal POST: audit chain row", r"suho/audit"),
    ("signal POST: risk gate", r"signals/services/risk"),
    ("signal POST: validation, adjustment, wire message", r"signals/(services|messages|delivery)"),
    ("signal POST: DRF (authentication, parsing, serialisers)", r"rest_framework/"),
    ("signal POST: Django request/response and middleware", r"django/(core|middleware|http|utils)|suho/(csp|errors)"),
]


def available() -> bool:
    return _py_spy() is not None


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 100, *, gil: bool = False) -> bool:
    """Sample `pid` for `seconds` into a collapsed-stack file (flamegraph.pl input); with `gil`, only the thread
    holding the GIL. False if py-spy could not (it needs ptrace: root, or CAP_SYS_PTRACE in a container)."""
    done = subprocess.run(
        [_py_spy(), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "--threads", "--nonblocking",
         *(["--gil"] if gil else []), "-f", "raw", "-o", str(out)],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 30,
    )  # fmt: skip
    return done.returncode == 0 and out.exists()


def record_during(
    pid: int, seconds: float, out: Path, work, request_stages: list | None = None, first_stages: list | None = None
) -> dict | None:
    """`work()` run while py-spy samples `pid` for `seconds` (starting half a second before it), summarised."""
    out.unlink(missing_ok=True)
    recorder = threading.Thread(target=record, args=(pid, seconds, out))
    recorder.start()
    time.sleep(0.5)
    work()
    recorder.join(seconds + 30)
    return summarise(out, seconds, request_stages=request_stages, first_stages=first_stages)


THREADS = {
    "MainThread": "event loop (MainThread)",
    "asyncio": "database_sync_to_async workers (asyncio_N)",
    "ThreadPoolExecutor-0": "asgiref's sync thread (ThreadPoolExecutor-0)",
    "suho-bus": "NATS bus loop (suho-bus)",
    "ThreadPoolExecutor": "request threads (Django's ASGI handler: one per request)",
    "suho-http": "request threads (suho-http, a fixed pool: suho/http.py)",
}


def _thread_name(head: str) -> str:
    name = re.sub(r"_\d+$", "", head.split(":", 1)[1].strip() if ":" in head else head)  # asyncio_3 → asyncio
    if name not in THREADS:
        name = re.sub(r"^ThreadPoolExecutor-\d+$", "ThreadPoolExecutor", name)  # a request's own executor
        name = re.sub(r"^suho-http-\d+$", "suho-http", name)  # one of the request threads (suho/http.py)
    return THREADS.get(name, name)


def summarise(
    path: Path,
    seconds: float,
    rate: int = 100,
    request_stages: list | None = None,
    first_stages: list | None = None,
    *,
    gil: bool = False,
) -> dict | None:
    """Busy share of wall time per thread, and per stage within each thread (from the collapsed stacks);
    `request_stages` are tried first for samples inside a Django request (REQUEST_FRAME), `first_stages` before
    STAGES for every sample. `gil`: the stacks were recorded with `record(gil=True)`."""
    if not path.exists():
        return None
    per_thread: Counter = Counter()
    per_stage: dict[str, Counter] = defaultdict(Counter)
    compiled = [(name, re.compile(pattern)) for name, pattern in [*(first_stages or []), *STAGES]]
    in_request = re.compile(REQUEST_FRAME)
    compiled_request = [(name, re.compile(pattern)) for name, pattern in (request_stages or [])] + compiled
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread, n = _thread_name(frames[0]), int(count)
        per_thread[thread] += n
        tried = compiled_request if any(in_request.search(frame) for frame in frames[1:]) else compiled
        stage = next((name for name, rx in tried if any(rx.search(frame) for frame in frames[1:])), "other")
        per_stage[thread][stage] += n
    # with the GIL sampled, shares of the samples taken (py-spy misses some while it cannot read the holder)
    wall = max(sum(per_thread.values()), 1) if gil else seconds * rate
    return {
        "seconds": seconds,
        "gil_held": sum(per_thread.values()) / (seconds * rate) if gil else None,
        "threads": {t: n / wall for t, n in per_thread.most_common()},
        "stages": {t: {s: n / wall for s, n in c.most_common()} for t, c in per_stage.items()},
    }


def markdown(summary: dict) -> str:
    held = summary.get("gil_held") is not None  # None, or absent from older summaries: not sampled by the GIL
    lines = [
        f"py-spy --gil, {summary['seconds']:.0f} s on the daphne process: a thread held the GIL in "
        f"{summary['gil_held']:.0%} of the samples a held GIL would have given (a lower bound: py-spy misses some); "
        "of those samples, the share of each thread, split by stage:"
        if held
        else f"py-spy, {summary['seconds']:.0f} s on the daphne process; share of wall time each "
        "thread was busy (100 % = one core; the threads share one GIL), split by stage:",
        "",
        f"| thread | {'GIL held' if held else 'busy'} | stage | {'GIL held' if held else 'busy'} |",
        "|---|---:|---|---:|",
    ]
    for thread, share in summary["threads"].items():
        if share < 0.01:
            continue
        first = True
        for stage, part in summary["stages"][thread].items():
            if part < 0.01:
                continue
            lines.append(f"| {thread if first else ''} | {f'{share:.0%}' if first else ''} | {stage} | {part:.0%} |")
            first = False
    return "\n".join(lines) + "\n"
