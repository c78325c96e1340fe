"""Regulatory reports (seed §8.1) into `mt5_compliance_reports`: immutable, with a SHA-256 of their canonical JSON.

- `mifid_transactions` — MiFID II–style transaction report: every transaction in the period, one row per trade
  order opened (its side) and per trade order closed (the opposite side), with instrument, quantity, price,
  venue (broker and server), account and times.
- `best_execution` — ESMA best-execution report: per symbol and broker, executions, slippage in pips (average,
  median, 95th percentile, continuous percentiles) and execution latency (average, 95th percentile).

Content is computed under the tenant's context (the service role, row-level security). Periods are half-open,
[start, end). Numbers are strings (exact decimals), so the canonical JSON — sorted keys, no spaces — and therefore the
checksum are reproducible from the stored content; the JSON download is exactly those bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from accounts.models import Tenant
from compliance.models import ComplianceReport
from suho.audit import audit_record
from suho.sql import fetch_dicts
from suho.tenancy import tenant_context
from trading.models import TradeOrder

MIFID_TRANSACTIONS = "mifid_transactions"
BEST_EXECUTION = "best_execution"
SCHEDULED_BY = "schedule"

REPORT_TYPE_UNKNOWN = "unknown report type {report_type!r}; one of: mifid_transactions, best_execution"
REPORT_PERIOD_EMPTY = "the period must end after it starts"

TRANSACTIONS = """
SELECT o.order_id::text || ':open' AS transaction_id, o.time AS transaction_time, 'open' AS transaction,
       upper(o.order_type) AS side, o.symbol AS instrument, o.volume AS quantity, o.open_price AS price,
       o.ticket, o.order_id, o.signal_id, o.account_id, a.account_number, a.broker AS venue, a.server,
       a.currency, o.time AS open_time, o.close_time
FROM mt5_trade_orders o JOIN mt5_user_accounts a ON a.account_id = o.account_id
WHERE o.time >= %(start)s AND o.time < %(end)s
UNION ALL
SELECT o.order_id::text || ':close', o.close_time, 'close',
       CASE WHEN upper(o.order_type) LIKE 'SELL%%' THEN 'BUY' ELSE 'SELL' END, o.symbol, o.volume, o.close_price,
       o.ticket, o.order_id, o.signal_id, o.account_id, a.account_number, a.broker, a.server,
       a.currency, o.time, o.close_time
FROM mt5_trade_orders o JOIN mt5_user_accounts a ON a.account_id = o.account_id
WHERE o.status = 'closed' AND o.close_time >= %(start)s AND o.close_time < %(end)s
ORDER BY transaction_time, transaction_id
"""

EXECUTION_STATS = """
SELECT s.symbol, a.broker, count(*) AS executions,
       round(avg(e.slippage_pips), 4) AS avg_slippage_pips,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.slippage_pips))::numeric, 4) AS median_slippage_pips,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.slippage_pips))::numeric, 4) AS p95_slippage_pips,
       round(avg(e.execution_latency_ms), 1) AS avg_latency_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.execution_latency_ms))::numeric, 1) AS p95_latency_ms
FROM mt5_signal_executions e
JOIN mt5_trading_signals s ON s.signal_id = e.signal_id
JOIN mt5_user_accounts a ON a.account_id = e.account_id
WHERE e.time >= %(start)s AND e.time < %(end)s
GROUP BY s.symbol, a.broker
ORDER BY s.symbol, a.broker
"""

CSV_COLUMNS = {
    MIFID_TRANSACTIONS: ("transaction_id", "transaction_time", "transaction", "side", "instrument", "quantity",
                         "price", "venue", "server", "account_id", "account_number", "currency", "ticket", "order_id",
                         "signal_id", "open_time", "close_time"),
    BEST_EXECUTION: ("symbol", "broker", "executions", "avg_slippage_pips", "median_slippage_pips",
                     "p95_slippage_pips", "avg_latency_ms", "p95_latency_ms"),
}  # fmt: skip
ROW_KEYS = {MIFID_TRANSACTIONS: "transactions", BEST_EXECUTION: "rows"}


def _plain(value):
    """JSON-safe and exact: decimals and ids as strings, times as ISO 8601 UTC."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def canonical_json(content: dict) -> bytes:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)
    return text.encode()


def report_checksum(content: dict) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _rows(sql: str, start: datetime, end: datetime) -> list[dict]:
    rows = fetch_dicts(TradeOrder, sql, {"start": start, "end": end})
    return [{key: _plain(value) for key, value in row.items()} for row in rows]


def report_content(*, report_type: str, start: datetime, end: datetime) -> dict:
    """The report's content for the current tenant context."""
    if report_type not in ROW_KEYS:
        raise ValueError(REPORT_TYPE_UNKNOWN.format(report_type=report_type))
    rows = _rows(TRANSACTIONS if report_type == MIFID_TRANSACTIONS else EXECUTION_STATS, start, end)
    return {
        "report_type": report_type,
        "period_start": _plain(start),
        "period_end": _plain(end),
        ROW_KEYS[report_type]: rows,
        "count": len(rows),
    }


def compliance_report_generate(
    *, tenant_id: UUID, report_type: str, start: datetime, end: datetime, generated_by: str
) -> ComplianceReport:
    """Compute, store (with its checksum) and audit one report for one tenant's [start, end).

    Raises ValueError (REPORT_TYPE_UNKNOWN, REPORT_PERIOD_EMPTY) before reading anything.
    """
    if report_type not in ROW_KEYS:
        raise ValueError(REPORT_TYPE_UNKNOWN.format(report_type=report_type))
    if end <= start:
        raise ValueError(REPORT_PERIOD_EMPTY)
    with tenant_context(tenant_id):
        content = report_content(report_type=report_type, start=start, end=end)
        report = ComplianceReport.objects.create(
            time=timezone.now(), tenant_id=tenant_id, report_type=report_type, period_start=start, period_end=end,
            content=content, checksum=report_checksum(content), generated_by=generated_by[:100],
        )  # fmt: skip
        audit_record(
            tenant_id=tenant_id, event_type="compliance_report_generated", category="compliance", action="create",
            description=f"{report_type} report {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} ({content['count']} rows)",
            metadata={"report_id": report.id, "report_type": report_type, "checksum": report.checksum,
                      "generated_by": generated_by, "rows": content["count"]},
        )  # fmt: skip
    return report


def compliance_reports_daily(*, day=None) -> int:
    """Daily (Celery beat): both reports of the previous UTC day for every active tenant, once per day."""
    day = day or (timezone.now().astimezone(UTC).date() - timedelta(days=1))
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    made = 0
    for tenant_id in Tenant.objects.filter(is_active=True).values_list("id", flat=True):
        for report_type in ROW_KEYS:
            with tenant_context(tenant_id):
                done = ComplianceReport.objects.filter(
                    report_type=report_type, period_start=start, period_end=end, generated_by=SCHEDULED_BY
                ).exists()
            if not done:
                compliance_report_generate(
                    tenant_id=tenant_id, report_type=report_type, start=start, end=end, generated_by=SCHEDULED_BY
                )
                made += 1
    return made


def report_csv(report: ComplianceReport) -> str:
    columns = CSV_COLUMNS[report.report_type]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.content.get(ROW_KEYS[report.report_type], []))
    return out.getvalue()
