"""Plain factory functions for tests: one row each, sensible defaults, any field overridable.

Every tenant-owned row is written under its tenant's context (`tenant_context`) through the service role's alias
("default"), identity rows included, unless `using` names another. Each alias is its own connection: in a
`django_db` test (one open transaction per alias) rows written through one alias are invisible to the others, and
Django checks the deferred foreign keys of each alias at the end of the test, so a test's rows must all be written
through one alias — the one it reads them with. (The ORM routes Tenant and User reads to the operator alias: read
them with `.using("default")` in such a test.)
"""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import ApiKey, EASession, MT5Account, Tenant, User
from compliance.models import AuditLog, ComplianceReport, RiskEvent, UserConsent
from quotes.models import BrokerQuote
from signals.models import TradingSignal
from suho.routers import SERVICE
from suho.tenancy import tenant_context
from trading.ingest import HeartbeatRow
from trading.models import BalanceRollup, BalanceSnapshot, Heartbeat, TradeEvent, TradeOrder

_serial = itertools.count(1)


def _create(model, tenant_id, using: str | None, fields: dict):
    alias = using or SERVICE
    with tenant_context(tenant_id, using=alias):
        return model.objects.using(alias).create(**fields)


def make_tenant(*, using: str | None = None, **fields) -> Tenant:
    n = next(_serial)
    fields = {"name": f"Tenant {n}", "slug": f"tenant-{n}-{timezone.now():%H%M%S%f}", **fields}
    return Tenant.objects.using(using or SERVICE).create(**fields)


def make_user(tenant: Tenant, *, using: str | None = None, **fields) -> User:
    n = next(_serial)
    fields = {"username": f"trader{n}-{timezone.now():%H%M%S%f}", "tenant": tenant, **fields}
    return _create(User, tenant.id, using, fields)


def make_account(tenant: Tenant, user: User, *, using: str | None = None, **fields) -> MT5Account:
    n = next(_serial)
    fields = {
        "tenant": tenant,
        "user": user,
        "account_number": 60000 + n,
        "broker": "ICMarkets",
        "server": "ICMarkets-Demo",
        "leverage": 500,
        **fields,
    }
    return _create(MT5Account, tenant.id, using, fields)


def make_api_key(account: MT5Account, *, using: str | None = None, **fields) -> ApiKey:
    n = next(_serial)
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "key_id": f"k{n}{timezone.now():%H%M%S%f}",
        "secret_hash": "not-a-real-hash",
        **fields,
    }
    return _create(ApiKey, account.tenant_id, using, fields)


def make_ea_session(api_key: ApiKey, *, using: str | None = None, **fields) -> EASession:
    fields = {"tenant_id": api_key.tenant_id, "account_id": api_key.account_id, "api_key": api_key, **fields}
    return _create(EASession, api_key.tenant_id, using, fields)


def make_signal(account: MT5Account, *, using: str | None = None, **fields) -> TradingSignal:
    now = timezone.now()
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "time": now,
        "symbol": "EURUSD",
        "action": "BUY",
        "entry_price": Decimal("1.08500"),
        "stop_loss": Decimal("1.08300"),
        "take_profit": Decimal("1.08900"),
        "volume": Decimal("0.10"),
        "valid_until": now + timedelta(minutes=5),
        **fields,
    }
    return _create(TradingSignal, account.tenant_id, using, fields)


def make_order(account: MT5Account, *, using: str | None = None, **fields) -> TradeOrder:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "time": timezone.now(),
        "ticket": 100000000 + next(_serial),
        "symbol": "EURUSD",
        "order_type": "BUY",
        "volume": Decimal("0.10"),
        "open_price": Decimal("1.08500"),
        **fields,
    }
    return _create(TradeOrder, account.tenant_id, using, fields)


def make_balance(account: MT5Account, *, using: str | None = None, **fields) -> BalanceSnapshot:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "time": timezone.now(),
        "balance": Decimal("10000.00"),
        "equity": Decimal("10000.00"),
        "margin_level": Decimal("500.00"),
        **fields,
    }
    return _create(BalanceSnapshot, account.tenant_id, using, fields)


def make_rollup(account: MT5Account, *, using: str | None = None, **fields) -> BalanceRollup:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "bucket": timezone.now().replace(second=0, microsecond=0),
        "balance": Decimal("10000.00"),
        "equity": Decimal("10000.00"),
        "samples": 1,
        **fields,
    }
    return _create(BalanceRollup, account.tenant_id, using, fields)


def make_heartbeat(account: MT5Account, *, using: str | None = None, **fields) -> Heartbeat:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "user_id": account.user_id,
        "time": timezone.now(),
        "status": "online",
        "latency_ms": 40,
        **fields,
    }
    return _create(Heartbeat, account.tenant_id, using, fields)


def heartbeat_row(account: MT5Account, session_id=None) -> HeartbeatRow:
    """A heartbeat as the gateway buffers it for `trading.ingest.heartbeats_insert` (a new session's by default)."""
    return HeartbeatRow(time_us=time.time_ns() // 1000, tenant_id=str(account.tenant_id),
                        account_id=str(account.pk), session_id=str(session_id or uuid.uuid4()), status="ok",
                        latency_ms=5, uptime_s=60, mt5_build=4000, terminal_connected=True, trade_allowed=True,
                        error_count=0, last_error_code=0, last_error_message="")  # fmt: skip


def make_quote(account: MT5Account, *, using: str | None = None, **fields) -> BrokerQuote:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "time": timezone.now(),
        "symbol": "EURUSD",
        "bid": Decimal("1.08500"),
        "ask": Decimal("1.08520"),
        "spread": Decimal("20"),
        **fields,
    }
    return _create(BrokerQuote, account.tenant_id, using, fields)


def make_trade_event(account: MT5Account, *, using: str | None = None, **fields) -> TradeEvent:
    n = next(_serial)
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "ticket": 200000000 + n,
        "kind": "open",
        "event_seq": n,
        "event_time": timezone.now(),
        **fields,
    }
    return _create(TradeEvent, account.tenant_id, using, fields)


def make_audit(tenant: Tenant, *, using: str | None = None, **fields) -> AuditLog:
    fields = {
        "tenant": tenant,
        "time": timezone.now(),
        "event_type": "account_created",
        "event_category": "account",
        "action": "create",
        **fields,
    }
    return _create(AuditLog, tenant.id, using, fields)


def make_risk_event(account: MT5Account, *, using: str | None = None, **fields) -> RiskEvent:
    fields = {
        "tenant_id": account.tenant_id,
        "account": account,
        "time": timezone.now(),
        "event_type": f"test_event_{next(_serial)}",
        "severity": "warning",
        "message": "test",
        **fields,
    }
    return _create(RiskEvent, account.tenant_id, using, fields)


def make_compliance_report(tenant: Tenant, *, using: str | None = None, **fields) -> ComplianceReport:
    now = timezone.now()
    fields = {
        "tenant": tenant,
        "time": now,
        "report_type": "mifid_transactions",
        "period_start": now - timedelta(days=1),
        "period_end": now,
        "content": {},
        "checksum": "0" * 64,
        **fields,
    }
    return _create(ComplianceReport, tenant.id, using, fields)


def make_consent(user: User, *, using: str | None = None, **fields) -> UserConsent:
    fields = {
        "tenant_id": user.tenant_id,
        "user": user,
        "time": timezone.now(),
        "purpose": "terms",
        "version": "1",
        **fields,
    }
    return _create(UserConsent, user.tenant_id, using, fields)


def staff_login(client, user: User):
    """Sign `user` in on the test client as the admin log-in does after password and code: the session carries
    the second-factor mark (accounts.staff_auth), without which staff sessions are signed out."""
    from accounts.staff_auth import STAFF_SESSION_KEY

    client.force_login(user)
    session = client.session
    session[STAFF_SESSION_KEY] = str(user.pk)
    session.save()
    return client


def ago(**delta) -> datetime:
    return timezone.now() - timedelta(**delta)
