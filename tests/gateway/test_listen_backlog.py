"""A burst of connections that the server cannot accept at once waits in the kernel's accept queue instead of being
dropped (suho.server.LISTEN_BACKLOG, issue 21): with Twisted's default backlog of 50, a reconnect storm overflowed
the queue thousands of times (`nstat TcpExtListenOverflows`) and each dropped EA waited for its TCP stack to send the
SYN again, 1, 3, 7 s later. Measured on a real server process, paused (SIGSTOP) so that nothing is accepted."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time
from pathlib import Path

import pytest

from bench.stack import listen_overflows
from suho.server import LISTEN_BACKLOG, endpoints_with_backlog
from tests.gateway.ea_client import server_env
from tests.servers import SERVER_PIDS, daphne_serving

TWISTED_DEFAULT_BACKLOG = 50
CONNECT_WAIT_S = 2.0  # a dropped SYN is sent again after 1 s and dropped again while the server stays paused


def test_daphne_endpoints_get_the_backlog_unless_they_set_one():
    described = ["tcp:port=8000:interface=0.0.0.0", "tcp:port=1:backlog=7", "unix:/run/s", "fd:fileno=3",
                 "ssl:443:privateKey=k.pem"]  # fmt: skip
    assert endpoints_with_backlog(described) == [
        f"tcp:port=8000:interface=0.0.0.0:backlog={LISTEN_BACKLOG}",
        "tcp:port=1:backlog=7",
        "unix:/run/s",
        "fd:fileno=3",
        f"ssl:443:privateKey=k.pem:backlog={LISTEN_BACKLOG}",
    ]


def _somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 128  # POSIX's traditional SOMAXCONN


def _connected(port: int, count: int) -> int:
    """Open `count` connections at once (non-blocking) and count those whose handshake completed: the kernel answers
    a SYN for a listening socket whose accept queue has room, and drops it when the queue is full."""
    sockets, connected = [], 0
    with selectors.DefaultSelector() as selector:  # epoll: a pytest session's descriptors may pass select()'s 1024
        try:
            for _ in range(count):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                sockets.append(sock)
                selector.register(sock, selectors.EVENT_WRITE)
            deadline = time.monotonic() + CONNECT_WAIT_S
            while selector.get_map() and (left := deadline - time.monotonic()) > 0:
                for key, _events in selector.select(left):
                    selector.unregister(key.fileobj)
                    connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            return connected
        finally:
            for sock in sockets:
                sock.close()


@pytest.mark.skipif(_somaxconn() <= TWISTED_DEFAULT_BACKLOG + 10, reason="the kernel caps every backlog near 50")
def test_a_burst_of_connections_waits_for_a_busy_server_instead_of_being_dropped(django_db_setup, tmp_path):
    burst = min(300, _somaxconn()) - 5  # well past Twisted's 50, within what the kernel allows any backlog
    with daphne_serving(server_env(), tmp_path / "daphne.log") as port:
        pid = SERVER_PIDS[port]
        os.kill(pid, signal.SIGSTOP)
        try:
            connected = _connected(port, burst)
        finally:
            os.kill(pid, signal.SIGCONT)
    assert connected == burst, f"{burst - connected} of {burst} connection attempts dropped by the accept queue"


@pytest.mark.skipif(not Path("/proc/net/netstat").exists(), reason="no /proc/net/netstat: not Linux")
def test_the_benchs_overflow_count_sees_a_full_accept_queue():
    """bench/reconnect.py reports the storm's dropped connections from this counter: it must move when a listening
    socket's queue overflows (one that never accepts, with a backlog of 1)."""
    before = listen_overflows()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        connected = _connected(listener.getsockname()[1], 20)
    after = listen_overflows()
    assert connected < 20
    assert before is not None and after is not None and after > before
