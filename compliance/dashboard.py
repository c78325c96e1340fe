"""The operator dashboard's figures (the admin index, issue 20): every tenant's, read on the operator path, each with
the admin list that shows the rows behind it, filtered by the same conditions that counted them.

In `compliance`, the oversight layer on top, because it reads every app; the beat, outbox and health figures come
from the plumbing (suho.beat, suho.outbox, suho.health).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from accounts.models import MT5Account
from accounts.selectors import OFFLINE_AFTER
from compliance.models import RiskEvent
from quotes.models import BrokerQuote
from signals.models import TradingSignal
from suho.beat import beat_tasks_status
from suho.health import services_health
from suho.models import BeatTaskRun, OutboxMessage
from suho.outbox import outbox_backlog
from suho.routers import operator_path

SILENT_LISTED = 20  # silent EAs named on the page; the link lists them all
SEVERITY_ORDER = {"critical": 0, "high": 1, "warning": 2, "medium": 3, "info": 4, "low": 5}


def _changelist(model, **lookups) -> str:
    """The model's admin list filtered by `lookups` (field lookups on its own columns, which the admin accepts in
    the query string; datetimes as ISO 8601)."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    params = {key: value.isoformat() if isinstance(value, datetime) else value for key, value in lookups.items()}
    return f"{url}?{urlencode(params)}" if params else url


def _figure(model, queryset_base, **lookups) -> dict:
    return {"count": queryset_base.filter(**lookups).count(), "url": _changelist(model, **lookups)}


def eas_connectivity(*, now: datetime) -> dict:
    """Active accounts in three disjoint groups: online (heartbeat within OFFLINE_AFTER), silent (still marked
    online, no heartbeat for OFFLINE_AFTER: the minute's connectivity task has not caught them, or is not running)
    and offline (disconnected); the silent ones named, most recently heard first."""
    heard_since = now - OFFLINE_AFTER
    active = MT5Account.objects.filter(is_active=True)
    silent = {"is_active__exact": "1", "connection_status__exact": "online", "last_heartbeat_at__lt": heard_since}
    silent_accounts = active.filter(**silent).select_related("tenant").order_by("-last_heartbeat_at")
    return {
        "online": _figure(MT5Account, active, is_active__exact="1", connection_status__exact="online",
                          last_heartbeat_at__gte=heard_since),
        "silent": _figure(MT5Account, active, **silent),
        "offline": _figure(MT5Account, active, is_active__exact="1", connection_status__exact="offline"),
        "silent_accounts": [
            {"name": account.name, "tenant": account.tenant.name, "last_heartbeat_at": account.last_heartbeat_at,
             "url": reverse("admin:accounts_mt5account_change", args=[account.pk])}
            for account in silent_accounts[:SILENT_LISTED]
        ],
    }  # fmt: skip


def ticks_last_minute(*, now: datetime) -> dict:
    figure = _figure(BrokerQuote, BrokerQuote.objects.all(), time__gte=now - timedelta(minutes=1))
    return {**figure, "per_s": round(figure["count"] / 60, 1)}


def signals_today(*, now: datetime) -> list[dict]:
    """Today's (UTC) signals by status, every status listed (0 included), in the lifecycle's order."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = dict(TradingSignal.objects.filter(time__gte=today).values_list("status").annotate(n=Count("signal_id")))
    return [
        {"status": status, "count": counts.get(status, 0),
         "url": _changelist(TradingSignal, status__exact=status, time__gte=today)}
        for status in TradingSignal.Status.values
    ]  # fmt: skip


def risk_events_open() -> list[dict]:
    """Open risk events by severity, the most severe first."""
    counts = RiskEvent.objects.filter(status="open").values_list("severity").annotate(n=Count("id"))
    return [
        {"severity": severity, "count": n,
         "url": _changelist(RiskEvent, status__exact="open", severity__exact=severity)}
        for severity, n in sorted(counts, key=lambda row: (SEVERITY_ORDER.get(row[0], 9), row[0]))
    ]  # fmt: skip


def operator_dashboard(*, now: datetime | None = None) -> dict:
    """Everything the dashboard shows, across every tenant (operator path). Beat tasks are suho.beat's statuses,
    each with `url`; `health` is /readyz's checks of PostgreSQL, Redis and NATS."""
    now = now or timezone.now()
    with operator_path():
        backlog = outbox_backlog()
        beat = [{"status": status, "url": _changelist(BeatTaskRun, task__exact=status.task)}
                for status in beat_tasks_status(now=now)]  # fmt: skip
        figures = {
            "now": now,
            "eas": eas_connectivity(now=now),
            "ticks": ticks_last_minute(now=now),
            "signals_today": signals_today(now=now),
            "risk_events_open": risk_events_open(),
            "outbox": {
                state: {"count": backlog[state], "url": _changelist(OutboxMessage, state=state)}
                for state in ("pending", "parked")
            },
            "beat_tasks": beat,
            "beat_overdue": [row["status"].name for row in beat if row["status"].overdue],
        }
    health = services_health()
    return {**figures, "health": health, "unhealthy": [name for name, result in health.items() if result != "ok"]}
