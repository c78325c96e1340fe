"""The embedded dev stack trusts a pid file only while it names the server it wrote it for: nats-server leaves its pid
file behind when it stops, and on a busy machine the number comes back as some other process."""

from __future__ import annotations

import subprocess
import time

import pytest

from suho import devstack
from tests.servers import nats_server_running

NATS = devstack.Service("nats", "NATS_URL", 0)


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


def test_a_pid_file_naming_another_program_is_stale_and_that_process_is_left_alone(state_dir, stranger):
    NATS.pid_file.write_text(f"{stranger.pid}\n")

    assert NATS.running_pid() is None
    NATS.stop()
    assert stranger.poll() is None


def test_the_server_named_by_its_pid_file_is_running_and_stop_ends_it_and_removes_the_file(state_dir):
    with nats_server_running("-P", str(NATS.pid_file)) as (server, _port):
        while not NATS.pid_file.exists():  # written at start-up; pytest-timeout bounds this
            time.sleep(0.05)
        assert NATS.running_pid() == server.pid

        NATS.stop()

        assert server.wait(timeout=5) is not None
        assert not NATS.pid_file.exists()
