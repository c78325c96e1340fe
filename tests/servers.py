"""A real server (`python -m suho.server`: daphne with Suho's limits) serving suho.asgi for tests that need a network
server (simulated EAs, the browser flow, the server's own limits)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

SERVER_START_S = 30.0
SERVER_PIDS: dict[int, int] = {}  # port → process id of each server daphne_serving runs (its memory is measured)
SERVER_LOGS: dict[int, Path] = {}  # port → log of each running server: a failed test's report shows their tails


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def daphne_serving(env: dict[str, str], log_path: Path, options: tuple[str, ...] = ()):
    """Start daphne with `env` (and daphne's command-line `options`), wait until /healthz answers, yield its port;
    stop it after. Its log is shown when it fails to start."""
    port = free_port()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "suho.server", "-b", "127.0.0.1", "-p", str(port), *options,
             "suho.asgi:application"],
            env=env, cwd=settings.BASE_DIR, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"daphne did not start (exit {process.poll()}):\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)  # not listening yet: the only wait without an event to wait on
        SERVER_PIDS[port] = process.pid
        SERVER_LOGS[port] = log_path
        yield port
    finally:
        SERVER_PIDS.pop(port, None)
        SERVER_LOGS.pop(port, None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def nats_server_running(*options: str):
    """A plain nats-server (the venv's, else the machine's) on a free port with `options`; yields (process, port)
    once it listens, stops it after. Skips the test where there is no nats-server."""
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if binary is None:
        pytest.skip("nats-server binary not installed")
    port = free_port()
    process = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server {' '.join(options)} did not listen on {port} (exit {process.poll()})")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=10)


def http(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """One HTTP request to a test server → (status, response headers, body); 4xx and 5xx are answers, not errors."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 (http://)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  (a test server: http://)
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def http_base(ws_url: str) -> str:
    """http://host:port of a gateway fixture's `ws://host:port/ws/ea/`."""
    return ws_url.replace("ws://", "http://", 1).removesuffix("/ws/ea/")


def owner_conninfo() -> str:
    """A libpq connection string for the owner role on the test database: a connection of its own, outside Django."""
    from django.db import connections
    from psycopg.conninfo import make_conninfo

    params = connections["owner"].get_connection_params()
    return make_conninfo(**{key: value for key, value in params.items() if key not in ("cursor_factory", "context")})
