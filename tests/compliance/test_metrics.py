"""GET /metrics: Prometheus text with the gateway, queue, risk and latency figures (seed §10.2)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import Client, override_settings
from django.utils import timezone
from factories import make_account, make_risk_event, make_signal, make_tenant, make_user
from prometheus_client.parser import text_string_to_metric_families

from signals.models import SignalExecution
from suho.bus import get_bus
from suho.metrics import batch_flush_observe
from suho.tenancy import tenant_context
from trading.gateway import disconnects, resync_reads, token_hellos
from trading.outbound_batch import outbound_batcher, outbound_flush, signal_sent_add


def scrape(client=None, **headers) -> dict:
    """The samples of one scrape; without headers it is let in as Prometheus would be (tests/test_metrics_access.py
    covers who is let in)."""
    with override_settings(METRICS_PUBLIC=not headers):
        response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_report_open_risk_events_latencies_flushes_and_connections(committed):
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    make_risk_event(account, event_type="daily_loss_limit", severity="critical")
    now = timezone.now()
    for latency in (120, 480, 900):
        signal = make_signal(account, time=now - timedelta(seconds=3), sent_to_ea_at=now - timedelta(seconds=2))
        with tenant_context(tenant.id):
            SignalExecution.objects.create(tenant_id=tenant.id, account=account, signal=signal, time=now,
                                           slippage_pips=Decimal("0.1"), execution_latency_ms=latency)  # fmt: skip
    batch_flush_observe("quotes", 12.0)

    samples = scrape()

    assert samples[("suho_risk_events_open", (("event_type", "daily_loss_limit"), ("severity", "critical")))] == 1
    assert samples[("suho_signal_execution_latency_ms_count", ())] == 3
    assert samples[("suho_signal_execution_latency_ms_bucket", (("le", "500"),))] == 2
    assert samples[("suho_signal_execution_latency_ms_sum", ())] == 1500
    assert samples[("suho_signal_delivery_latency_ms_count", ())] == 3
    assert samples[("suho_batch_flush_seconds_count", (("kind", "quotes"),))] >= 1
    assert ("suho_ea_connections", ()) in samples
    assert ("suho_celery_queue_length", ()) in samples


def test_a_metrics_token_is_required_when_set(committed, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 403
    assert scrape(HTTP_AUTHORIZATION="Bearer scrape-secret")


async def test_the_outbound_batchers_counts_are_reported(committed):
    """Issue 19: /metrics read the gateway's private batcher map, and the outbound bookkeeping's batcher was not in
    it. Each batcher is now metered under its name by the gateway's own collector."""

    def signal_make():
        tenant = make_tenant()
        return make_signal(make_account(tenant, make_user(tenant)))

    signal = await database_sync_to_async(signal_make)()
    before = outbound_batcher().flushed_rows
    signal_sent_add(tenant_id=signal.tenant_id, signal_id=signal.signal_id)
    assert await outbound_flush(timeout_s=10)

    samples = await database_sync_to_async(scrape)()

    assert samples[("suho_ingested_rows_total", (("kind", "outbound"),))] == before + 1
    assert samples[("suho_dropped_rows_total", (("kind", "outbound"),))] == outbound_batcher().dropped_rows


@pytest.mark.parametrize(
    ("shared", "calls", "round_trips"),
    [
        (resync_reads, "suho_ea_resyncs_total", "suho_ea_resync_reads_total"),
        (token_hellos, "suho_ea_token_hellos_total", "suho_ea_token_hello_round_trips_total"),
        (disconnects, "suho_ea_disconnects_total", "suho_ea_disconnect_round_trips_total"),
    ],
)
def test_the_shared_round_trips_calls_and_round_trips_are_reported(committed, monkeypatch, shared, calls, round_trips):
    monkeypatch.setattr(shared, "calls", 41)  # as trading.gateway.SharedRoundTrips counts them
    monkeypatch.setattr(shared, "round_trips", 3)

    samples = scrape()

    assert samples[(calls, ())] == 41
    assert samples[(round_trips, ())] == 3


def test_the_bus_unsent_bytes_are_reported(committed):
    """Issue 19: /metrics read `suho.bus._bus`, gone since the bus became one per URL, so the gauge was never
    emitted. The bus registers its own collector."""
    get_bus().flush()  # the process's bus is connected

    assert scrape()[("suho_nats_publish_pending_bytes", ())] >= 0
