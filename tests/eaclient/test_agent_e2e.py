"""The agent end to end: a trader signs up in the portal and gets an API key, then runs `suho-ea` (a separate
process, with the simulated terminal, as the portal's commands say) against a real server. Ticks and balances are
stored; a signal is executed and its trade linked to the position's MT5 ticket; CLOSE_ALL_POSITIONS closes it; the
agent killed (SIGKILL) after its order went out but before it could answer, and started again, leaves exactly one
order for that signal, also after a RECONNECT command makes the server deliver everything again."""

from __future__ import annotations

import json
import os
import re
import signal as os_signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.models import MT5Account
from suho.routers import operator_path
from tests.gateway.conftest import (
    _truncate,
    server_url,  # noqa: F401  (a session fixture: daphne serving suho.asgi)
)
from tests.gateway.test_simulated_ea import signal_create
from trading.outbound import command_issue

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"]),
    pytest.mark.timeout(240),
]
WAIT_S = 30.0


def rows(sql: str, params=()) -> list[tuple]:
    with connections["operator"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def eventually(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return result


@pytest.fixture
def cleanup():
    yield
    _truncate()


def signup_and_key(server_ws: str) -> tuple[uuid.UUID, str, str]:
    """Through the portal's own pages: sign up, add an account, generate its key. → (account id, key, key page)."""
    client = Client()
    # Fixed, not random: "Agent-e2e-<hex>" was too like the random username now and then (1 in ~300), and
    # Django's similarity validator refused the signup.
    password = "Correct-Horse-Battery-9"
    form = {"organisation": "Agent Trading", "username": f"agent{uuid.uuid4().hex[:6]}", "email": "agent@example.com",
            "password1": password, "password2": password}  # fmt: skip
    response = client.post("/portal/signup/", form)
    assert response.status_code == 302, response.content[:2000]
    response = client.post("/portal/accounts/add/", {"name": "Agent demo", "account_type": "demo", "broker": "Sim"})
    assert response.status_code == 302
    account_id = uuid.UUID(response["Location"].rstrip("/").split("/")[-1])
    page = client.post(f"/portal/accounts/{account_id}/keys/").content.decode()
    key = re.search(r'id="api-key"[^>]*>([^<]+)<', page).group(1).strip()
    return account_id, key, page


class AgentProcess:
    """`suho-ea` with the simulated terminal, whose account file (like a real terminal) outlives the agent."""

    def __init__(self, tmp: Path, server_ws: str, account_id: uuid.UUID, key: str):
        self.tmp, self.server_ws, self.account_id = tmp, server_ws, account_id
        self.key_file = tmp / "suho-key.txt"
        self.key_file.write_text(key)
        self.terminal_file = tmp / "terminal.json"
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def start(self, *extra: str) -> None:
        self.runs += 1
        log = open(self.tmp / f"agent-{self.runs}.log", "wb")  # the agent process writes it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eaclient.cli", "--server", self.server_ws, "--account", str(self.account_id),
             "--key-file", str(self.key_file), "--symbols", "EURUSD,XAUUSD", "--terminal", "simulated",
             "--sim-state", str(self.terminal_file), "--sim-seed", "5", "--state-dir", str(self.tmp / "state"),
             "--poll-interval-s", "0.1", "--balance-interval-s", "0.5", "--heartbeat-interval-s", "0.5", *extra],
            cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def stop(self, sig: int = os_signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("agent-*.log")))

    def positions(self) -> list[dict]:
        if not self.terminal_file.exists():
            return []
        return json.loads(self.terminal_file.read_text())["positions"]


def quotes_since(account_id, since) -> int:
    return rows("SELECT count(*) FROM mt5_broker_quotes WHERE account_id = %s AND time > %s", [account_id, since])[0][0]


def last_ask(account_id) -> float:
    return float(rows("SELECT ask FROM mt5_broker_quotes WHERE account_id = %s AND symbol = 'EURUSD'"
                      " ORDER BY time DESC LIMIT 1", [account_id])[0][0])  # fmt: skip


def signal_for(account: MT5Account, ask: float) -> uuid.UUID:
    """A BUY with a range of ±0.005 around `ask`, published to the account's EA."""
    return signal_create(
        account.tenant, account, action="BUY", entry=ask, low=ask - 0.005, high=ask + 0.005, sl=ask - 0.05,
        tp=ask + 0.05,
    )  # fmt: skip


def orders_for(signal_id) -> list[tuple]:
    return rows(
        "SELECT s.status, e.ticket, o.ticket, o.status FROM mt5_trading_signals s"
        " JOIN mt5_signal_executions e USING (signal_id) JOIN mt5_trade_orders o ON o.signal_id = s.signal_id"
        " WHERE s.signal_id = %s", [signal_id],
    )  # fmt: skip


def test_agent_end_to_end_through_the_server(server_url, tmp_path, cleanup):  # noqa: F811
    account_id, key, page = signup_and_key(server_url)
    assert key.startswith("suho_ea_") and f"--account {account_id}" in page and "suho-ea" in page
    with operator_path():
        account = MT5Account.objects.get(account_id=account_id)
    agent = AgentProcess(tmp_path, server_url, account_id, key)
    try:
        started = timezone.now()
        agent.start()
        eventually(lambda: quotes_since(account_id, started) >= 5, "ticks stored")
        eventually(lambda: rows("SELECT count(*) FROM mt5_account_balance_history WHERE account_id = %s",
                                [account_id])[0][0] >= 2, "balances stored")  # fmt: skip
        assert key not in agent.log()  # never logged

        first = signal_for(account, last_ask(account_id))
        executed = eventually(lambda: [r for r in orders_for(first) if r[0] == "executed"], "signal 1 executed")
        [(_status, execution_ticket, order_ticket, order_status)] = executed
        [position] = agent.positions()
        assert execution_ticket == order_ticket == position["ticket"] and order_status == "open"
        assert position["comment"] == f"suho:{first.hex[:11]}" and position["magic"] > 0

        close_all = command_issue(tenant_id=account.tenant_id, account_id=account_id, kind="close_all",
                                  issued_by="test", reason="flatten")  # fmt: skip
        eventually(lambda: [r for r in orders_for(first) if r[3] == "closed"], "the order closed by close-all")
        eventually(lambda: rows("SELECT status FROM mt5_ea_commands WHERE command_id = %s", [close_all.command_id])
                   == [("executed",)], "close-all acknowledged")  # fmt: skip
        assert agent.positions() == []

        # A terminal that answers late: the order is executed, then the agent dies before it can answer.
        agent.stop()
        restarted = timezone.now()
        agent.start("--sim-order-delay-s", "120")
        eventually(lambda: quotes_since(account_id, restarted) >= 3, "the agent back")
        second = signal_for(account, last_ask(account_id))
        eventually(lambda: agent.positions(), "the order for signal 2 executed by the terminal")
        agent.stop(os_signal.SIGKILL)
        agent.start()
        executed = eventually(lambda: [r for r in orders_for(second) if r[0] == "executed"], "signal 2 executed")
        [(_status, execution_ticket, order_ticket, _order_status)] = executed
        assert [p["ticket"] for p in agent.positions()] == [execution_ticket] == [order_ticket]
        assert "its order was found in the terminal" in (tmp_path / "agent-3.log").read_text()  # settled, not resent

        # Everything delivered again after a reconnect: still one order for it.
        reconnect = command_issue(tenant_id=account.tenant_id, account_id=account_id, kind="reconnect",
                                  issued_by="test")  # fmt: skip
        eventually(lambda: rows("SELECT status FROM mt5_ea_commands WHERE command_id = %s", [reconnect.command_id])
                   == [("executed",)], "reconnect acknowledged")  # fmt: skip
        again = timezone.now()
        eventually(lambda: quotes_since(account_id, again) >= 3, "the agent back after the reconnect")
        assert len(agent.positions()) == 1 and len(orders_for(second)) == 1
        assert rows("SELECT count(*) FROM mt5_trade_orders WHERE account_id = %s", [account_id]) == [(2,)]
    except BaseException:
        print(agent.log())
        raise
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.stop()
        settled = [-1]  # the server writes what the agent sent last (batched): wait for it before the clean-up

        def flushed() -> bool:
            count = rows("SELECT count(*) FROM mt5_account_balance_history WHERE account_id = %s", [account_id])
            stable, settled[0] = count[0][0] == settled[0], count[0][0]
            return stable

        eventually(lambda: flushed() or time.sleep(0.5), "the last balances written")
