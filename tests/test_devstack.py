"""The embedded dev stack trusts a pid file only while it names the server it wrote it for: nats-server leaves its pid
file behind when it stops, and on a busy machine the number comes back as some other process."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from suho import devstack
from tests.servers import free_port, nats_server_running

NATS = devstack.Service("nats", "NATS_URL", 0)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="no /proc: pid files are trusted as they are"
)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(devstack, "STATE_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def stranger():
    """A live process that is not a NATS server."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def _written_by(server) -> None:
    deadline = time.monotonic() + 10
    while not NATS.pid_file.exists():  # the server writes it as it starts
        assert time.monotonic() < deadline, "nats-server wrote no pid file"
        time.sleep(0.05)
    assert NATS.pid_file.read_text().split()[0] == str(server.pid)


def test_a_pid_file_naming_another_program_is_stale_and_that_process_is_left_alone(state_dir, stranger):
    NATS.pid_file.write_text(f"{stranger.pid}\n")

    assert NATS.running_pid() is None
    NATS.stop()
    assert stranger.poll() is None


def test_the_server_named_by_its_pid_file_is_running_and_stop_ends_it_and_removes_the_file(state_dir):
    with nats_server_running("-P", str(NATS.pid_file)) as (server, _port):
        _written_by(server)
        assert NATS.running_pid() == server.pid

        NATS.stop()

        assert server.wait(timeout=5) is not None
        assert not NATS.pid_file.exists()


def test_a_pid_file_older_than_the_server_it_names_is_stale_and_that_server_is_left_alone(state_dir):
    """The number came back as a server of the same name (the machine's own nats-server, say)."""
    with nats_server_running("-P", str(NATS.pid_file)) as (server, _port):
        _written_by(server)
        an_hour_ago = time.time() - 3600
        os.utime(NATS.pid_file, (an_hour_ago, an_hour_ago))

        assert NATS.running_pid() is None
        NATS.stop()
        assert server.poll() is None


def _aof_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*.aof"))


def _rewriting(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO persistence\r\n")
        reader = sock.makefile("rb")
        size = int(reader.readline()[1:])
        return b"aof_rewrite_in_progress:1" in reader.read(size)


def test_an_embedded_redis_starts_once_its_data_is_loaded_and_has_its_file_rewritten_to_that_data(state_dir):
    """Each start used to replay every write since the file was made (1.2 GB after benches, ~14 s of LOADING)."""
    redis = devstack.Service("redis", "REDIS_URL", free_port())
    redis.start()
    try:
        value = b"x" * 1000
        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
            for _ in range(4):  # the same key again and again: the data stays one key, the file grows by each write
                sock.sendall(b"".join(b"SET quote %s\r\n" % value for _ in range(1000)))
                reader = sock.makefile("rb")
                assert all(reader.readline() == b"+OK\r\n" for _ in range(1000))
        redis.stop()
        grown = _aof_bytes(state_dir / "redis")
        assert grown > 4_000_000

        redis.start()

        assert devstack._redis_reply(redis.port, b"GET quote") == b"$1000"  # loaded when start returns
        deadline = time.monotonic() + 10
        while _rewriting(redis.port) or _aof_bytes(state_dir / "redis") > 100_000:
            assert time.monotonic() < deadline, f"the file was not rewritten: {_aof_bytes(state_dir / 'redis')} bytes"
            time.sleep(0.05)
    finally:
        redis.stop()
