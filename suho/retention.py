"""Retention for the tenant tables that are not partitioned by time (seed §3.1); `partitions_upkeep` covers the rest.

Runs as the owner, one tenant at a time under that tenant's context, rather than as the operator: compliance reports
are immutable to the operator (no DELETE), and row security is forced on the owner, so the tenant context is what
lets it see the rows — and each statement then walks the tenant-leading indexes. One transaction per tenant.

Executions outlive their signals' 90 days (2 years), so a signal goes only once it has no execution; trade orders
keep 7 years and forget a deleted signal (`signal_id` set to NULL, as the model's SET_NULL says).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connections

from suho.routers import OWNER
from suho.tenancy import tenant_context

KEEP = {  # seed §3.1
    "mt5_signal_executions": "2 years",
    "mt5_trading_signals": "90 days",
    "mt5_risk_events": "2 years",
    "mt5_compliance_reports": "10 years",
    "mt5_balance_5min": "2 years",  # the rollup keeps as long as the balances it summarises
}

EXPIRED_SIGNAL = """
s.tenant_id = %(tenant)s AND s.time < %(now)s - %(mt5_trading_signals)s::interval
AND NOT EXISTS (SELECT 1 FROM mt5_signal_executions AS e WHERE e.signal_id = s.signal_id)
"""
STATEMENTS = (  # in foreign-key order
    ("mt5_signal_executions",
     "DELETE FROM mt5_signal_executions"
     " WHERE tenant_id = %(tenant)s AND time < %(now)s - %(mt5_signal_executions)s::interval"),
    ("mt5_trade_orders.signal_id",
     "UPDATE mt5_trade_orders AS o SET signal_id = NULL"
     f" WHERE o.tenant_id = %(tenant)s AND o.signal_id IN (SELECT s.signal_id FROM mt5_trading_signals AS s"
     f" WHERE {EXPIRED_SIGNAL})"),
    ("mt5_trading_signals",
     f"DELETE FROM mt5_trading_signals AS s WHERE {EXPIRED_SIGNAL}"),
    ("mt5_risk_events",
     "DELETE FROM mt5_risk_events WHERE tenant_id = %(tenant)s AND time < %(now)s - %(mt5_risk_events)s::interval"),
    ("mt5_compliance_reports",
     "DELETE FROM mt5_compliance_reports"
     " WHERE tenant_id = %(tenant)s AND time < %(now)s - %(mt5_compliance_reports)s::interval"),
    ("mt5_balance_5min",
     "DELETE FROM mt5_balance_5min WHERE tenant_id = %(tenant)s AND bucket < %(now)s - %(mt5_balance_5min)s::interval"),
)  # fmt: skip


def retention_upkeep(now: datetime | None = None) -> dict[str, int]:
    """Delete every tenant's rows past retention; return the rows deleted (or unlinked) per table."""
    now = now or datetime.now(UTC)
    connection = connections[OWNER]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM suho_tenants ORDER BY id")
        tenants = [row[0] for row in cursor.fetchall()]
    counts = dict.fromkeys((name for name, _ in STATEMENTS), 0)
    for tenant in tenants:
        with tenant_context(tenant, using=OWNER), connection.cursor() as cursor:
            for name, statement in STATEMENTS:
                cursor.execute(statement, {"tenant": tenant, "now": now, **KEEP})
                counts[name] += cursor.rowcount
    return counts
