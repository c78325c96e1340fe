"""The bench's servers: environment for its own database, real daphne and data bridge processes, what the machine runs.

`bench_env()` must run before Django is imported: settings read the environment once, and every role connection
comes from DATABASE_URL, so pointing its path at `bench_suho` moves all three roles off the dev database.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("SUHO_BENCH_DB", "bench_suho")  # another name lets two benches share a server
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-not-for-production"
BENCH_METRICS_TOKEN = "bench-only-metrics-token"
SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 5


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def bench_env() -> dict[str, str]:
    """Point this process (and the daphne it starts) at the bench database; production-like settings, not DEBUG.

    DEBUG would keep every query in memory; SUHO_TESTING is not set, so Argon2 and the real settings stay.
    """
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:25432/suho")
    admin_url = os.environ.get("DATABASE_ADMIN_URL", database_url)
    values = {
        "DATABASE_URL": _with_database(database_url, BENCH_DB),
        "DATABASE_ADMIN_URL": admin_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", BENCH_SECRET_KEY),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DJANGO_SETTINGS_MODULE": "suho.settings",
        "METRICS_TOKEN": BENCH_METRICS_TOKEN,  # the bench reads a server's /metrics (Daphne.metrics)
    }
    os.environ.update(values)
    os.environ.pop("SUHO_TESTING", None)
    return values


def admin_dsn() -> str:
    """A superuser connection to the bench database (bypasses RLS): for counting rows and probing visibility."""
    url = _with_database(os.environ["DATABASE_ADMIN_URL"], BENCH_DB)
    return url.replace("postgres://", "postgresql://", 1)


WAIT_LABELS = (  # (state, wait type, wait event or None for any) → what a backend of the server is doing
    (("idle", None, None), "idle: waiting for the server's next statement"),
    (("idle in transaction", None, None), "idle in a transaction: waiting for the server"),
    (("active", "Lock", "advisory"), "waiting for an advisory lock (a tenant's audit chain, decision 0004)"),
    (("active", "Lock", None), "waiting for a row or table lock"),
    (("active", "IO", "WalSync"), "committing: waiting for the WAL flush"),
    (("active", "LWLock", "WALWrite"), "committing: waiting for the WAL flush"),
    (("active", "IO", "WalWrite"), "committing: waiting for the WAL flush"),
    (("active", "Client", None), "running a statement: waiting for the server's input"),
)


def wait_label(state: str | None, wait_type: str | None, wait_event: str | None) -> str:
    """What pg_stat_activity's (state, wait_event_type, wait_event) of one backend says it is doing."""
    if state == "active" and wait_type is None:
        return "running a statement"
    for (want_state, want_type, want_event), label in WAIT_LABELS:
        if state == want_state and want_type in (None, wait_type) and want_event in (None, wait_event):
            return label
    return f"{state}: {wait_type or '-'} {wait_event or ''}".strip()


class PostgresWaits:
    """Samples, every `interval_s` from a thread, what the bench database's backends are doing (pg_stat_activity,
    as the superuser: other roles' rows are hidden from the app roles), leaving out the sampler's own connection and
    `leave_out` (by default this process's open Django connections). Shares of all samples, and how many backends
    on average: what a wait on PostgreSQL was."""

    def __init__(self, interval_s: float = 0.02, conninfo: str | None = None, leave_out: list[int] | None = None):
        self.interval_s, self.rounds, self.counts, self._conninfo = interval_s, 0, {}, conninfo
        self.leave_out = leave_out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pg-waits", daemon=True)

    def __enter__(self) -> PostgresWaits:
        if self.leave_out is None:
            from django.db import connections  # not at import: bench_env() must run before Django is imported

            self.leave_out = [c.connection.info.backend_pid for c in connections.all() if c.connection is not None]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with psycopg.connect(self._conninfo or admin_dsn(), autocommit=True) as connection:
            while not self._stop.is_set():
                rows = connection.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)",
                    [self.leave_out],
                ).fetchall()
                self.rounds += 1
                for row in rows:
                    label = wait_label(*row)
                    self.counts[label] = self.counts.get(label, 0) + 1
                self._stop.wait(self.interval_s)

    def result(self) -> dict:
        total = sum(self.counts.values())
        return {
            "interval_s": self.interval_s,
            "rounds": self.rounds,
            "backends": total / self.rounds if self.rounds else 0.0,
            "shares": {label: count / total for label, count in sorted(self.counts.items(), key=lambda kv: -kv[1])},
        }


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (each WebSocket is a descriptor); return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Daphne:
    """One real ASGI server process (`python -m suho.server … suho.asgi:application`) on a free local port."""

    def __init__(
        self, log_dir: Path, name: str = "daphne", app: str = "suho.asgi:application", env: dict | None = None
    ):
        self.port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(app),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"daphne did not start on port {self.port}:\n{tail}")
            time.sleep(0.1)

    def command(self, app: str) -> list[str]:
        return [sys.executable, "-m", "suho.server", "-b", "127.0.0.1", "-p", str(self.port), "-v", "0", app]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/ea/"

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def thread_cpu(self) -> dict[str, tuple[float, float]]:
        """User and system CPU seconds of the event loop's thread (the process's first) and of all its other threads
        together (the database threads, the NATS bus loop, the request threads): which one a storm keeps busy."""
        loop, rest = (0.0, 0.0), (0.0, 0.0)
        for thread in self.ps.threads():
            if thread.id == self.proc.pid:
                loop = (thread.user_time, thread.system_time)
            else:
                rest = (rest[0] + thread.user_time, rest[1] + thread.system_time)
        return {"event loop": loop, "other threads": rest}

    def metrics(self, *names: str) -> dict[str, float]:
        """The values of the server's /metrics samples `names` (unlabelled): what it counted itself."""
        return {
            sample.name: sample.value
            for family in self._metric_families()
            for sample in family.samples
            if sample.name in names and not sample.labels
        }

    def _metric_families(self):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                         headers={"Authorization": f"Bearer {BENCH_METRICS_TOKEN}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return list(text_string_to_metric_families(response.read().decode()))

    def gc_pauses(self) -> dict[str, float]:
        """The server's cyclic-collector pauses so far (/metrics `suho_gc_pause_seconds`, all generations): how
        many, their seconds, and how many took over 5 ms."""
        totals = {"count": 0.0, "seconds": 0.0, "within_5ms": 0.0}
        families = [family for family in self._metric_families() if family.name == "suho_gc_pause_seconds"]
        if not any(s.labels.get("le") == "0.005" for family in families for s in family.samples):
            raise RuntimeError("the server's /metrics has no suho_gc_pause_seconds bucket le=0.005")
        for family in families:
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    totals["count"] += sample.value
                elif sample.name.endswith("_sum"):
                    totals["seconds"] += sample.value
                elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 0.005:
                    totals["within_5ms"] += sample.value
        return {"count": totals["count"], "seconds": totals["seconds"],
                "over_5ms": totals["count"] - totals["within_5ms"]}  # fmt: skip

    def rss_bytes(self) -> int:
        return self.ps.memory_info().rss

    def nofile_limit(self) -> int:
        return self.ps.rlimit(psutil.RLIMIT_NOFILE)[0]

    def established(self) -> int:
        return sum(
            1
            for c in self.ps.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait (thousands of disconnects may still be queued)."""
        process_stop(self.proc)
        self._log.close()


UVICORN_BACKLOG = 4096  # suho.server.LISTEN_BACKLOG (not imported: it installs Twisted's reactor in this process)


class Uvicorn(Daphne):
    """The same application under uvicorn (the sans-I/O `websockets` implementation, uvloop, httptools), for the
    ASGI server comparison (issue 21 item 2). It has none of the limits suho/server.py adds to daphne (decision
    0012): a measurement of the server's own cost per frame, not a deployment."""

    def command(self, app: str) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
            "--ws", "websockets-sansio", "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
            "--log-level", "warning", "--no-access-log", "--backlog", str(UVICORN_BACKLOG), app,
        ]  # fmt: skip


def errors_logged(path: Path) -> int:
    """ERROR and CRITICAL records in a server's JSON log (DEBUG off: one JSON object a line)."""
    if not path.exists():
        return 0
    text = path.read_text(errors="replace")
    return text.count('"level": "ERROR"') + text.count('"level": "CRITICAL"')


class Bridge:
    """One real data bridge process (`python manage.py data_bridge --durable …`), for INGEST_MODE=bridge runs."""

    def __init__(self, log_dir: Path, *, durable: str, name: str = "bridge"):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "data_bridge", "--durable", durable],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def terminate(self) -> None:
        """SIGTERM: the bridge finishes the batch in hand and closes (several bridges then stop in parallel)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        process_stop(self.proc)
        self._log.close()


def process_stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL when it has not exited within SERVER_STOP_TIMEOUT_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; read as a delta): not the time the hypervisor gave this
    virtual machine's cores to others (steal), which no program here used."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - steal_s(times)


def steal_s(times=None) -> float:
    """CPU seconds this virtual machine's cores were ready to run but lent to other machines by the hypervisor (all
    cores; read as a delta; 0 where the kernel does not count it)."""
    times = times or psutil.cpu_times()
    return getattr(times, "steal", 0.0)


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows, for the
    whole network namespace: read as a delta while the bench is what connects). None where /proc has no such row."""
    try:
        names, values = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()[:2]]
    except (OSError, ValueError):
        return None
    counters = dict(zip(names[1:], values[1:], strict=False)) if names[:1] == ["TcpExt:"] else {}
    return int(counters["ListenOverflows"]) if "ListenOverflows" in counters else None


_PG_AUX = re.compile(r"checkpointer|background writer|walwriter|wal writer|autovacuum|logical replication|stats")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds per PostgreSQL process serving the bench: its database's backends and the server's own workers
    (WAL writer, checkpointer …); backends of other databases on a shared server are left out."""
    seen = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        title = " ".join(proc.info["cmdline"] or [])
        if not (proc.info["name"] or "").startswith("postgres") or proc.info["cpu_times"] is None:
            continue
        if BENCH_DB in title or _PG_AUX.search(title):
            seen[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return seen


def nats_process() -> psutil.Process | None:
    """The nats-server on this machine that listens on NATS_URL's port (None when NATS runs elsewhere)."""
    from django.conf import settings

    port = urlsplit(settings.NATS_URL).port or 4222
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "nats-server":
            continue
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")):
                return proc
    return None


def process_cpu_s(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return times.user + times.system
    return None


def thread_schedstat(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread of `pid`: seconds it ran on a core and seconds it was runnable but waited for one (the kernel's
    /proc/…/schedstat; read as a delta). Empty where /proc has none."""
    seen = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            ran_ns, waited_ns, _slices = (int(v) for v in (task / "schedstat").read_text().split())
            seen[int(task.name)] = (ran_ns / 1e9, waited_ns / 1e9)
    return seen


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two `postgres_cpu()` readings (a process that started in between counts from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def cpu_model() -> str:
    """The CPU's name with its family and model numbers: a cloud machine may call itself just "AMD EPYC", and two
    machines of that name differed ~1.9x in the codec's figures (section 1) between two runs of this bench."""
    with contextlib.suppress(OSError):
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:30] if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if "model name" in fields:
            numbers = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
            return fields["model name"] + numbers
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine and the servers' versions as the servers report them."""
    import psycopg
    import redis
    from django.conf import settings

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }
    with psycopg.connect(admin_dsn()) as conn:
        info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        info["timescaledb"] = row[0] if row else None
    info["redis"] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).info("server")["redis_version"]
    info["nats"] = _nats_version(settings.NATS_URL)
    import daphne
    import django

    info["commit"] = _git("rev-parse", "--short", "HEAD")
    info["dirty"] = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines() if line]

    info["django"] = django.get_version()
    info["daphne"] = daphne.__version__
    return info


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.rstrip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _nats_version(url: str) -> str:
    import asyncio

    import nats

    async def probe() -> str:
        client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            version = client.connected_server_version
            return f"{version.major}.{version.minor}.{version.patch}" + (f"-{version.dev}" if version.dev else "")
        finally:
            await client.close()

    return asyncio.run(probe())


class LoadProcess:
    """A `bench.ea_load` child (or `module`'s): its config as a JSON file, JSON lines back, `stop` on stdin."""

    def __init__(self, config: dict, log_dir: Path, name: str, module: str = "bench.ea_load"):
        import json
        import queue
        import threading

        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        config_path = log_dir / f"{name}.json"
        config_path.write_text(json.dumps(config))
        self._stderr = (log_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(config_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            preexec_fn=raise_nofile,
        )
        self.ps = psutil.Process(self.proc.pid)
        self._lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in self.proc.stdout:
                self._lines.put(json.loads(line))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def event(self, timeout: float) -> dict:
        import queue

        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no answer within {timeout:.0f} s") from None
        if item is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}); see its log")
        return item

    def go(self) -> None:
        """Start a child that printed its ready event and waits for `go` (bench.reconnect_load, storm_floor_load)."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def command(self, line: str) -> None:
        """One line on the child's stdin (`close` to bench.reconnect_load)."""
        self.proc.stdin.write(f"{line}\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 60) -> dict:
        """Ask for the result; the child then exits, dropping its sockets."""
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        result = self.event(timeout)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._stderr.close()
        return result

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._stderr.close()
