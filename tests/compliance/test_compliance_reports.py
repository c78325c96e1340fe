"""MiFID II transaction and ESMA best-execution reports for a fixture period match figures computed here
independently; stored with the checksum of their canonical JSON, immutable, downloadable per tenant."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connections, transaction
from django.test import Client
from factories import make_account, make_order, make_signal, make_tenant, make_user, staff_login

from accounts.models import User
from compliance.models import AuditLog, ComplianceReport
from compliance.reports import (
    BEST_EXECUTION,
    MIFID_TRANSACTIONS,
    REPORT_PERIOD_EMPTY,
    compliance_report_generate,
    compliance_reports_daily,
)
from signals.models import SignalExecution
from suho.routers import operator_path
from suho.tenancy import tenant_context

DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
START, END = DAY, DAY + timedelta(days=1)


def make_execution(account, *, symbol, slippage_pips, latency_ms, at):
    signal = make_signal(account, symbol=symbol, time=at - timedelta(seconds=5))
    with tenant_context(account.tenant_id):
        return SignalExecution.objects.create(
            tenant_id=account.tenant_id, account=account, signal=signal, time=at,
            slippage_pips=Decimal(slippage_pips), execution_latency_ms=latency_ms,
        )  # fmt: skip


@pytest.fixture
def period(committed):
    """Tenant A: two accounts at two brokers; orders in, across and outside the period; executions. Tenant B: noise."""
    tenant, other = make_tenant(), make_tenant()
    user = make_user(tenant)
    ic = make_account(tenant, user, broker="ICMarkets", server="ICMarkets-Live", account_number=1001)
    pp = make_account(tenant, user, broker="Pepperstone", server="Pepperstone-Demo", account_number=2002)
    noise = make_account(other, make_user(other), broker="ICMarkets")
    h = lambda n: DAY + timedelta(hours=n)  # noqa: E731
    orders = {
        "in": make_order(ic, time=h(1), symbol="EURUSD", order_type="BUY", volume=Decimal("0.50"),
                         open_price=Decimal("1.08500"), status="closed", close_time=h(2),
                         close_price=Decimal("1.08600"), profit=Decimal("50")),
        "open_only": make_order(pp, time=h(3), symbol="GBPUSD", order_type="SELL", volume=Decimal("1.00"),
                                open_price=Decimal("1.26000")),
        "close_only": make_order(ic, time=DAY - timedelta(hours=2), symbol="USDJPY", order_type="SELL",
                                 volume=Decimal("0.20"), open_price=Decimal("150.100"), status="closed",
                                 close_time=h(4), close_price=Decimal("150.000"), profit=Decimal("13.30")),
        "after": make_order(ic, time=END + timedelta(minutes=1), symbol="EURUSD", open_price=Decimal("1.1")),
        "before": make_order(ic, time=DAY - timedelta(minutes=1), symbol="EURUSD", open_price=Decimal("1.1")),
    }  # fmt: skip
    make_order(noise, time=h(5), symbol="EURUSD", open_price=Decimal("1.2"))
    executions = [
        (ic, "EURUSD", "0.5", 120), (ic, "EURUSD", "1.5", 480), (ic, "EURUSD", "-0.5", 200), (ic, "EURUSD", "2.5", 900),
        (pp, "EURUSD", "0.2", 50), (ic, "GBPUSD", "3.0", 700),
    ]  # fmt: skip
    for n, (account, symbol, slippage, latency) in enumerate(executions):
        make_execution(
            account, symbol=symbol, slippage_pips=slippage, latency_ms=latency, at=h(6) + timedelta(minutes=n)
        )
    make_execution(ic, symbol="EURUSD", slippage_pips="9", latency_ms=9999, at=END)  # outside: end is exclusive
    make_execution(noise, symbol="EURUSD", slippage_pips="7", latency_ms=7777, at=h(7))
    return tenant, other, orders, executions


def q(value, places: str) -> str:
    return str(Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def percentile(values, fraction):
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def test_the_transaction_report_lists_every_open_and_close_in_the_period(period):
    tenant, _, orders, _ = period
    report = compliance_report_generate(
        tenant_id=tenant.id, report_type=MIFID_TRANSACTIONS, start=START, end=END, generated_by="test"
    )
    rows = report.content["transactions"]
    expected = [
        (f"{orders['in'].pk}:open", "BUY", "EURUSD", "0.5000", "1.08500000", "ICMarkets", 1001),
        (f"{orders['in'].pk}:close", "SELL", "EURUSD", "0.5000", "1.08600000", "ICMarkets", 1001),
        (f"{orders['open_only'].pk}:open", "SELL", "GBPUSD", "1.0000", "1.26000000", "Pepperstone", 2002),
        (f"{orders['close_only'].pk}:close", "BUY", "USDJPY", "0.2000", "150.00000000", "ICMarkets", 1001),
    ]
    assert [(r["transaction_id"], r["side"], r["instrument"], r["quantity"], r["price"], r["venue"],
             r["account_number"]) for r in rows] == expected  # fmt: skip
    assert rows[1]["transaction_time"] == (DAY + timedelta(hours=2)).isoformat()
    assert report.content["count"] == 4
    assert (
        report.checksum
        == hashlib.sha256(json.dumps(report.content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    )


def test_the_best_execution_report_matches_statistics_computed_independently(period):
    tenant, _, _, executions = period
    report = compliance_report_generate(
        tenant_id=tenant.id, report_type=BEST_EXECUTION, start=START, end=END, generated_by="test"
    )
    groups: dict[tuple[str, str], list[tuple[Decimal, int]]] = {}
    for account, symbol, slippage, latency in executions:
        groups.setdefault((symbol, account.broker), []).append((Decimal(slippage), latency))
    expected = []
    for (symbol, broker), values in sorted(groups.items()):
        pips = [float(p) for p, _ in values]
        latencies = [lat for _, lat in values]
        expected.append({
            "symbol": symbol, "broker": broker, "executions": len(values),
            "avg_slippage_pips": q(statistics.fmean(pips), "0.0001"),
            "median_slippage_pips": q(statistics.median(pips), "0.0001"),
            "p95_slippage_pips": q(percentile(pips, 0.95), "0.0001"),
            "avg_latency_ms": q(statistics.fmean(latencies), "0.1"),
            "p95_latency_ms": q(percentile(latencies, 0.95), "0.1"),
        })  # fmt: skip
    assert report.content["rows"] == expected
    assert expected[0]["median_slippage_pips"] == "1.0000"  # EURUSD@ICMarkets: -0.5, 0.5, 1.5, 2.5


def test_a_report_is_immutable_even_to_the_owner(period):
    tenant, *_ = period
    report = compliance_report_generate(
        tenant_id=tenant.id, report_type=BEST_EXECUTION, start=START, end=END, generated_by="test"
    )
    for alias in ("default", "owner"):
        with tenant_context(tenant.id, using=alias):
            with pytest.raises(DatabaseError, match=r"permission denied|immutable"), transaction.atomic(using=alias):
                with connections[alias].cursor() as cursor:
                    cursor.execute("UPDATE mt5_compliance_reports SET checksum = 'x' WHERE id = %s", [report.pk])
    with tenant_context(tenant.id):
        assert ComplianceReport.objects.get(pk=report.pk).checksum == report.checksum
        audit = AuditLog.objects.get(event_type="compliance_report_generated")
    assert audit.metadata["checksum"] == report.checksum


def test_reports_download_as_json_and_csv_for_their_tenant_only(period):
    tenant, other, orders, _ = period
    report = compliance_report_generate(
        tenant_id=tenant.id, report_type=MIFID_TRANSACTIONS, start=START, end=END, generated_by="test"
    )
    client = Client()
    client.force_login(make_user(tenant))
    response = client.get(f"/api/compliance/reports/{report.pk}.json")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == report.checksum == response["X-Checksum-SHA256"]
    response = client.get(f"/api/compliance/reports/{report.pk}.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert (table[0]["transaction_id"], table[0]["side"], table[0]["price"]) == (
        f"{orders['in'].pk}:open", "BUY", "1.08500000")  # fmt: skip
    assert len(table) == 4

    stranger = Client()
    stranger.force_login(make_user(other))
    assert stranger.get(f"/api/compliance/reports/{report.pk}.json").status_code == 404
    assert Client().get(f"/api/compliance/reports/{report.pk}.csv").status_code in (401, 403)
    assert stranger.get("/api/compliance/reports/" + "0" * 36 + ".json").status_code == 404  # not a UUID


def test_the_daily_schedule_makes_both_reports_per_tenant_once(period):
    tenant, *_ = period
    assert compliance_reports_daily(day=DAY.date()) == 4
    assert compliance_reports_daily(day=DAY.date()) == 0
    with tenant_context(tenant.id):
        made = sorted(ComplianceReport.objects.values_list("report_type", "period_start", "period_end"))
    assert made == [(BEST_EXECUTION, START, END), (MIFID_TRANSACTIONS, START, END)]


def test_on_demand_through_manage_py_and_an_empty_period_is_refused(period):
    tenant, *_ = period
    out = io.StringIO()
    call_command("compliance_report", "--tenant", str(tenant.id), "--type", MIFID_TRANSACTIONS,
                 "--start", START.date().isoformat(), "--end", END.date().isoformat(), stdout=out)  # fmt: skip
    assert ": 4 rows, sha256 " in out.getvalue()
    with pytest.raises(ValueError, match=REPORT_PERIOD_EMPTY):
        compliance_report_generate(tenant_id=tenant.id, report_type=BEST_EXECUTION, start=END, end=START,
                                   generated_by="test")  # fmt: skip


def test_operators_read_compliance_tables_in_the_admin_and_download_any_tenants_report(period):
    tenant, *_ = period
    report = compliance_report_generate(
        tenant_id=tenant.id, report_type=BEST_EXECUTION, start=START, end=END, generated_by="test"
    )
    with operator_path():
        staff = User.objects.create_superuser(username="ops-reports", password="staff password 3")
    client = Client()
    staff_login(client, staff)
    for model in ("auditlog", "riskevent", "compliancereport", "userconsent"):
        assert client.get(f"/admin/compliance/{model}/").status_code == 200, model
    page = client.get(f"/admin/compliance/compliancereport/{report.pk}/change/")
    assert page.status_code == 200
    assert f"/api/compliance/reports/{report.pk}.csv" in page.content.decode()
    assert client.post(f"/admin/compliance/auditlog/{report.pk}/delete/").status_code in (403, 404)
    download = client.get(f"/api/compliance/reports/{report.pk}.json")
    assert hashlib.sha256(download.content).hexdigest() == report.checksum
