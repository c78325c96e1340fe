"""Prometheus metrics of this process, served at `/metrics` (docs/operations.md; alert rules in docker/).

Three kinds:
- instruments updated where things happen: batch flush latency (the gateway's batchers call `batch_flush_observe`);
- collectors each component registers itself with prometheus_client's `REGISTRY` when it is imported, read at
  scrape time: the gateway's EA connections and rows written/dropped per batcher, the outbound batcher included
  (`trading.gateway`), the bus's unsent bytes (`suho.bus`), the cyclic garbage collector's pauses in a server
  process (`suho.server`). This module reads no other module's private names and
  imports no domain app (docs/dependencies.md); `trading.apps` imports the gateway at start-up, so every process
  that serves /metrics has those collectors registered;
- values read at scrape time by `SuhoCollector`: the Celery queue length (Redis LLEN), JetStream consumers' pending
  messages from the NATS monitoring endpoint when `NATS_MONITOR_URL` is set, open risk events by type, outbox
  messages parked after JetStream refused them, and signal delivery / execution latency histograms over the
  executions of the last `LATENCY_WINDOW` (window histograms: use `histogram_quantile` on them directly, not on
  `rate()`).
The database figures are read through the operator path (cross-tenant), with a statement timeout, at most once per
`METRICS_CACHE_S` per process: scrapes in between get the last figures, so scraping cannot load the database.
`/metrics` needs `Authorization: Bearer <METRICS_TOKEN>`; without a token set it is 403 unless `METRICS_PUBLIC=1`
(issue 15, finding 13: it was open by default).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.request

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger(__name__)

LATENCY_WINDOW = "15 minutes"
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
CELERY_QUEUE = "celery"

BATCH_FLUSH_SECONDS = Histogram(
    "suho_batch_flush_seconds",
    "Time to write one batch of volume rows (quotes, balances, heartbeats) to the database",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def batch_flush_observe(kind: str, elapsed_ms: float) -> None:
    BATCH_FLUSH_SECONDS.labels(kind=kind).observe(elapsed_ms / 1000)


LATENCIES = """
SELECT 'delivery' AS kind, extract(epoch FROM (s.sent_to_ea_at - s.time)) * 1000 AS ms
  FROM mt5_trading_signals s WHERE s.sent_to_ea_at IS NOT NULL AND s.sent_to_ea_at >= now() - %(window)s::interval
UNION ALL
SELECT 'execution', e.execution_latency_ms
  FROM mt5_signal_executions e WHERE e.execution_latency_ms IS NOT NULL AND e.time >= now() - %(window)s::interval
"""
RISK_EVENTS_OPEN = "SELECT event_type, severity, count(*) FROM mt5_risk_events WHERE status = 'open' GROUP BY 1, 2"
OUTBOX_PARKED = "SELECT count(*) FROM suho_outbox WHERE parked_at IS NOT NULL"


METRICS_FORBIDDEN = "metrics need Authorization: Bearer <METRICS_TOKEN> (or METRICS_PUBLIC=1 with no token set)"

_database_lock = threading.Lock()
_database_cached: tuple[float, tuple] | None = None  # (monotonic time read, rows)


def _database_rows() -> tuple:
    """(open risk events, latency rows, parked outbox count), read at most once per METRICS_CACHE_S; concurrent
    scrapes wait for the one read in progress. Raises what the database raises (nothing is cached then)."""
    global _database_cached
    with _database_lock:
        cached = _database_cached
        if cached is not None and time.monotonic() - cached[0] < settings.METRICS_CACHE_S:
            return cached[1]
        rows = _database_read()
        _database_cached = (time.monotonic(), rows)
        return rows


def _database_read() -> tuple:
    from django.db import connections, transaction

    from suho.routers import OPERATOR

    with transaction.atomic(using=OPERATOR), connections[OPERATOR].cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        cursor.execute(RISK_EVENTS_OPEN)
        risk_rows = cursor.fetchall()
        cursor.execute(LATENCIES, {"window": LATENCY_WINDOW})
        latency_rows = cursor.fetchall()
        cursor.execute(OUTBOX_PARKED)
        [outbox_parked] = cursor.fetchone()
    return risk_rows, latency_rows, outbox_parked


def _histogram(name: str, documentation: str, values: list[float]) -> HistogramMetricFamily:
    buckets = [(str(bound), sum(1 for v in values if v <= bound)) for bound in LATENCY_BUCKETS_MS]
    buckets.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(values))


class SuhoCollector:
    def describe(self):
        return []  # no collect() at registration: it would read the database

    def collect(self):
        yield from self._celery()
        yield from self._nats()
        yield from self._database()

    def _celery(self):
        try:
            import redis

            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
            length = client.llen(CELERY_QUEUE)
        except Exception:
            log.warning("metrics: Celery queue length unavailable", exc_info=True)
            return
        yield GaugeMetricFamily("suho_celery_queue_length", "Tasks waiting in the Celery queue", value=length)

    def _nats(self):
        url = settings.NATS_MONITOR_URL
        if not url.startswith(("http://", "https://")):
            return
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/jsz?consumers=true", timeout=2) as response:  # noqa: S310
                data = json.load(response)
        except Exception:
            log.warning("metrics: NATS monitoring unavailable", exc_info=True)
            return
        pending = GaugeMetricFamily("suho_nats_consumer_pending", "JetStream messages not yet delivered",
                                    labels=["stream", "consumer"])  # fmt: skip
        for account in data.get("account_details", []):
            for stream in account.get("stream_detail", []):
                for consumer in stream.get("consumer_detail", []):
                    pending.add_metric([stream.get("name", ""), consumer.get("name", "")],
                                       consumer.get("num_pending", 0))  # fmt: skip
        yield pending

    def _database(self):
        try:
            risk_rows, latency_rows, outbox_parked = _database_rows()
        except Exception:
            log.warning("metrics: database figures unavailable", exc_info=True)
            return
        risk = GaugeMetricFamily("suho_risk_events_open", "Open risk events", labels=["event_type", "severity"])
        for event_type, severity, count in risk_rows:
            risk.add_metric([event_type, severity], count)
        yield risk
        yield GaugeMetricFamily("suho_outbox_parked_messages", "Outbox messages JetStream refused for good, parked "
                                "until an operator re-queues them (admin)", value=outbox_parked)  # fmt: skip
        for kind, help_text in (("delivery", "Signal created → sent to the EA"),
                                ("execution", "Signal sent → executed at the broker")):  # fmt: skip
            values = [float(ms) for k, ms in latency_rows if k == kind]
            yield _histogram(f"suho_signal_{kind}_latency_ms", f"{help_text}, last {LATENCY_WINDOW} (ms)", values)


_collector = SuhoCollector()
REGISTRY.register(_collector)


def metrics_allowed(authorization: str) -> bool:
    """The `Authorization` header carries METRICS_TOKEN; with no token set, only METRICS_PUBLIC opens /metrics."""
    token = settings.METRICS_TOKEN
    if token:
        return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())
    return settings.METRICS_PUBLIC


def metrics_view(request):
    """`GET /metrics`: Prometheus text format, for a caller metrics_allowed lets in; 403 for anyone else."""
    if not metrics_allowed(request.headers.get("Authorization", "")):
        return HttpResponseForbidden(METRICS_FORBIDDEN)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
