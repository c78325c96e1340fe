"""Gateway test fixtures: committed tenants, accounts and API keys (cleaned up as the owner), the ingest mode a
volume-ingest test runs in, the database thread held back (`held`: the test decides when it runs), and daphne
serving the gateway in a process of its own (a second one for the tests of one live session per account across
processes).

The server is daphne in a subprocess on a free port, on the test database (DATABASE_URL's path swapped for it) and
this machine's Redis and NATS: an EA must speak real WebSocket frames over TCP, and a server in another process is
the shape production has. Not `ChannelsLiveServerTestCase`/`DaphneProcess`: they fork this process (its NATS bus
thread and open connections included) and they are unittest classes, where our three-role test database is set up
by a pytest session fixture. One daphne per ingest mode serves the whole session.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.db import connections

from accounts.models import MT5Account, Tenant, User
from accounts.services import api_key_create
from suho.tenancy import tenant_context
from tests.chunks import current_chunks_again
from tests.gateway.ea_client import bridge_running, server_env
from tests.servers import daphne_serving
from trading import gateway

OWNER_TRUNCATE = (
    "TRUNCATE mt5_broker_quotes, mt5_account_balance_history, mt5_ea_heartbeat, mt5_trade_orders, mt5_trade_events,"
    " mt5_signal_executions, mt5_trading_signals, mt5_ea_commands, mt5_ea_sessions, mt5_api_keys,"
    " mt5_user_accounts, mt5_audit_log, suho_audit_chain_heads, suho_users, suho_tenants CASCADE"
)


def account_create(tenant: Tenant, name: str = "EA") -> tuple[MT5Account, str]:
    """A committed account of `tenant` with an API key; returns (account, secret)."""
    user = User.objects.create_user(username=f"u{uuid.uuid4().hex[:8]}", password="x" * 12, tenant=tenant)
    with tenant_context(tenant.id):
        account = MT5Account.objects.create(tenant=tenant, user=user, name=name)
        _key, secret = api_key_create(account=account)
    return account, secret


def tenant_create(name: str = "Alpha") -> Tenant:
    return Tenant.objects.create(name=name, slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}")


def _truncate() -> None:
    for alias in ("default", "operator"):
        connections[alias].close()
    with connections["owner"].cursor() as cursor:
        cursor.execute(OWNER_TRUNCATE)  # TRUNCATE fires no row triggers: the audit log's guard is for DELETE
    current_chunks_again()


@pytest.fixture
def ea_account():
    """A committed tenant, user, account and API key (the socket runs in other threads and connections)."""
    tenant = tenant_create()
    account, secret = account_create(tenant)
    yield tenant, account, secret
    _truncate()


@pytest.fixture
def ea_accounts():
    """`make(tenants, per_tenant)` → [(tenant, account, secret), …], committed and cleaned up like `ea_account`."""

    def make(tenants: int, per_tenant: int) -> list[tuple[Tenant, MT5Account, str]]:
        made = []
        for t in range(tenants):
            tenant = tenant_create(f"Tenant{t}")
            made += [(tenant, *account_create(tenant, f"EA {t}.{a}")) for a in range(per_tenant)]
        return made

    yield make
    _truncate()


@pytest.fixture(params=["direct", "bridge"])
async def ingest_mode(request, settings):
    """Run a volume-ingest test in both INGEST_MODEs. In bridge mode this process's gateway publishes its batches to
    SUHO_INGEST and a data bridge (`bridge_run`) runs in this loop for the test; wait with `ingest_settled()`."""
    settings.INGEST_MODE = request.param
    gateway._batchers.clear()  # made on first use for the mode in force then
    try:
        if request.param == "direct":
            yield request.param
        else:
            async with bridge_running():
                yield request.param
    finally:
        gateway._batchers.clear()


def _daphne(log_dir, **env: str):
    """daphne serving suho.asgi on the test database; yields its EA URL; its log is shown if it fails to start."""
    with daphne_serving(server_env(**env), log_dir / "daphne.log") as port:
        yield f"ws://127.0.0.1:{port}/ws/ea/"


@pytest.fixture(scope="session")
def server_url(django_db_setup, tmp_path_factory):
    """The gateway in direct mode: it writes ticks, balances and heartbeats itself."""
    yield from _daphne(tmp_path_factory.mktemp("daphne"), INGEST_MODE="direct")


@pytest.fixture(scope="session")
def second_server_url(django_db_setup, tmp_path_factory):
    """A second gateway process of the same deployment (same database, Redis and NATS), in direct mode."""
    yield from _daphne(tmp_path_factory.mktemp("daphne-second"), INGEST_MODE="direct")


@pytest.fixture(scope="session")
def bridge_server_url(django_db_setup, tmp_path_factory):
    """The gateway in bridge mode: volume rows go to SUHO_INGEST; the test runs the data bridge that writes them."""
    yield from _daphne(tmp_path_factory.mktemp("daphne-bridge"), INGEST_MODE="bridge")


class HeldThread:
    """Stands in for `db_thread_submit`: keeps what is submitted until the test runs it in a thread."""

    def __init__(self) -> None:
        self.submitted: list = []

    def __call__(self, func) -> None:
        self.submitted.append(func)

    async def run_next(self) -> None:
        await asyncio.to_thread(self.submitted.pop(0))


@pytest.fixture
def held(monkeypatch) -> HeldThread:
    thread = HeldThread()
    monkeypatch.setattr(gateway, "db_thread_submit", thread)
    return thread
