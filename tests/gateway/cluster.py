"""Web processes behind HAProxy for the scale-out tests: the deployment's shape (docker/haproxy.cfg, suho/cluster.py)
on loopback, each process on the test database, Redis and NATS. A process can be stopped (SIGTERM: it drains) or
killed (SIGKILL) and started again; HAProxy's runtime socket says which servers it considers up."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from suho import cluster
from tests.gateway.ea_client import server_env
from tests.servers import SERVER_START_S, free_port

needs_haproxy = pytest.mark.skipif(not cluster.haproxy_available(), reason=cluster.HAPROXY_MISSING)
BALANCER_WAIT_S = 15.0  # HAProxy's checks: 2 s apart, 2 to rise; a loaded machine answers /readyz late
STOP_S = 30.0


class WebProcess:
    """`python -m suho.server` on a free loopback port, started by this test run (its pid is its own)."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name, self.log_path, self.port = name, log_dir / f"{name}.log", free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                cluster.web_command(self.port), env=server_env(INGEST_MODE="direct"), cwd=cluster.BASE_DIR,
                stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not start (exit {self.process.poll()}):\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # not listening yet: nothing to wait on but the port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_S)

    def stop(self) -> int:
        """SIGTERM (it drains, decision 0018) and wait for the exit; SIGKILL only past STOP_S."""
        if not self.alive:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_S)
            raise


class WebCluster:
    """`count` web processes behind HAProxy; `url` is the EA socket through the balancer."""

    def __init__(self, count: int, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.webs = [WebProcess(f"web{i}", log_dir) for i in range(1, count + 1)]
        self.port = free_port()
        self.haproxy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/ea/"

    def start(self) -> None:
        for web in self.webs:
            web.start()
        self.log_file = open(self.log_dir / "haproxy.log", "ab")
        self.haproxy = cluster.haproxy_start([web.port for web in self.webs], port=self.port, workdir=self.log_dir,
                                             log_file=self.log_file, admin_socket=self.admin_socket)  # fmt: skip
        self.wait_servers({web.name: "UP" for web in self.webs})

    @property
    def admin_socket(self) -> Path:
        return self.log_dir / "haproxy.sock"

    def ensure_running(self) -> None:
        """Start again what an earlier test stopped or killed, and wait until HAProxy sends to every process."""
        for web in self.webs:
            if not web.alive:
                web.start()  # on its old port: HAProxy's configuration names it
        self.wait_servers({web.name: "UP" for web in self.webs})

    def servers(self) -> dict[str, str]:
        """{server name: HAProxy's status (UP, DOWN, …)} from its runtime API."""
        return {name: row["status"].split(" ")[0] for name, row in self._stat().items()}

    def _servers_or_none(self) -> dict[str, str] | None:
        try:
            return self.servers()
        except (FileNotFoundError, ConnectionRefusedError):  # HAProxy has not opened its socket yet
            return None

    def wait_idle(self, timeout: float = BALANCER_WAIT_S) -> None:
        """Until HAProxy holds no connection to any process (an earlier test's sockets are closed): its choice of
        process for the next connection depends on those counts."""
        deadline = time.monotonic() + timeout
        while any(int(row["scur"]) for row in self._stat().values()):
            assert time.monotonic() < deadline, f"HAProxy still holds connections: {self._stat()}"
            time.sleep(0.1)

    def sessions_total(self) -> dict[str, int]:
        """{server name: connections HAProxy has sent it so far}."""
        return {name: int(row["stot"]) for name, row in self._stat().items()}

    def _stat(self) -> dict[str, dict]:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(self.admin_socket))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {row["svname"]: row for row in rows
                if row.get("pxname") == "web" and row["svname"] not in ("FRONTEND", "BACKEND")}  # fmt: skip

    def wait_servers(self, expected: dict[str, str], timeout: float = BALANCER_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self._servers_or_none()) != expected:
            if self.haproxy.poll() is not None:
                pytest.fail(f"HAProxy exited with {self.haproxy.returncode}")
            assert time.monotonic() < deadline, f"HAProxy still sees {seen}, not {expected}"
            time.sleep(0.1)

    def web_by_pid(self, pid: int) -> WebProcess:
        return next(web for web in self.webs if web.pid == pid)

    def stop(self) -> None:
        for web in self.webs:
            try:
                web.stop()
            except subprocess.TimeoutExpired:
                pass
        if self.haproxy is not None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=STOP_S)
            self.log_file.close()


def node_pid(node: str) -> int:
    """The process id in a gateway's node id (trading.gateway.NODE: host-pid-random)."""
    return int(node.rsplit("-", 2)[1])
