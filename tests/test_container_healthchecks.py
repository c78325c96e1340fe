"""docker/healthcheck.py's checks for the services without an HTTP port, run as compose runs them (a subprocess).

`make prod-smoke` runs every check against its deployment (the healthy answer); these pin that a check says
"unhealthy", naming why, when what it checks is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys

from django.conf import settings

from signals.intake_nats import signal_intake_serve

HEALTHCHECK = os.path.join(settings.BASE_DIR, "docker", "healthcheck.py")


async def _check(service: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, HEALTHCHECK, service, env=dict(os.environ), cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode()


@contextlib.asynccontextmanager
async def intake_serving():
    """The NATS signal intake, serving until the block ends."""
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(signal_intake_serve(stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(server, 5)


async def test_the_signal_intake_check_passes_while_an_intake_serves_and_fails_naming_why_without_one():
    async with intake_serving():
        assert await _check("signal_intake") == (0, "signal_intake: ok\n")
    returncode, output = await _check("signal_intake")
    assert returncode == 1
    assert output.startswith("signal_intake: NoRespondersError"), output


async def test_the_data_bridge_check_fails_naming_why_when_nats_is_out_of_reach(monkeypatch):
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    returncode, output = await _check("data_bridge")
    assert returncode == 1
    assert output == "data_bridge: ConnectionError: NATS at nats://127.0.0.1:1 did not answer within 4 s\n", output


async def test_a_check_reaches_nats_through_any_server_a_cluster_url_lists(monkeypatch):
    """NATS_URL may list a cluster's servers (docs/decisions/0019): the first one here is down, the check uses the
    next."""
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:1,{settings.NATS_URL}")
    async with intake_serving():
        assert await _check("signal_intake") == (0, "signal_intake: ok\n")
