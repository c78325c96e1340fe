"""A draining web process awaits what the apps registered (suho/drain.py): plumbing imports no app, yet the gateway's
buffered rows are written before the process exits (the SIGTERM test in tests/gateway/test_scale_out.py drives the
whole drain through a real server)."""

from __future__ import annotations

import pytest

from suho import drain
from trading import gateway


def test_the_gateway_registers_its_batchers_flush_for_the_drain():
    assert gateway.batchers_flush in drain._hooks


async def test_every_hook_runs_even_after_one_fails_and_the_first_failure_is_raised(monkeypatch):
    ran = []

    async def failing():
        ran.append("failing")
        raise RuntimeError("first")

    async def later():
        ran.append("later")

    monkeypatch.setattr(drain, "_hooks", [])
    drain.drain_hook_register(failing)
    drain.drain_hook_register(later)
    drain.drain_hook_register(later)  # registered once
    with pytest.raises(RuntimeError, match="first"):
        await drain.drain_hooks_run()
    assert ran == ["failing", "later"]
