"""The operator's commands that issue producer credentials print them once, and they work."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from signals.services import ml_engine_key_verify, tradingview_webhook_resolve


def _run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_ml_engine_key_create_prints_a_working_key(tenant):
    key = _run("ml_engine_key_create", "--tenant", tenant.slug, "--label", "lstm")[-1]
    assert ml_engine_key_verify(key=key).tenant_id == tenant.id
    with pytest.raises(CommandError):
        _run("ml_engine_key_create", "--tenant", "no-such-tenant")


def test_tradingview_webhook_create_prints_a_working_url(account):
    path = _run("tradingview_webhook_create", "--account", str(account.account_id))[-1]
    assert path.startswith("/api/tv/tv_") and path.endswith("/")
    assert tradingview_webhook_resolve(token=path.split("/")[3]).account_id == account.account_id
    with pytest.raises(CommandError):
        _run("tradingview_webhook_create", "--account", "nope")
