"""The risk monitor (seed §8.3, §10.2): measure, open one event per account and type, act once, notify, resolve.

Each tenant's work runs in its own transaction under that tenant's context (the service role, row-level security);
only the list of tenants is read on the operator path. A breach goes through the SQL `trigger_risk_event(...)`,
which keeps one open event per account and type and audits its opening. The run that opens an event claims it
(one conditional update of `notified_at`) and only that run takes the configured action and notifies operators
(a Celery task queued after commit); later runs find the event open and add nothing. An open event whose condition
no longer holds is resolved and audited. The action is accounts' one stop-trading service (`account_trading_stop`,
as the portal's and the admin's stops); trading it disabled stays disabled until an operator turns it back on
(`manage.py trading_enable`: `account_trading_start`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.utils import timezone

from accounts.models import MT5Account, Tenant
from accounts.services import account_trading_stop
from compliance import selectors
from compliance.models import RiskEvent
from compliance.notify import operators_notify
from suho.audit import audit_record
from suho.routers import SERVICE
from suho.tenancy import tenant_context

log = logging.getLogger(__name__)

RISK_ACTOR = "risk_monitor"
TRADE_LATENCY_LIMIT_MS = 500  # seed §10.2
PRICE_DEVIATION_LIMIT_PERCENT = Decimal("0.05")  # seed §10.2
EA_SILENT_AFTER = timedelta(minutes=2)  # seed §10.2
RECENT_WINDOW = timedelta(minutes=5)  # executions and quotes the per-minute checks look at
BALANCE_WINDOW = timedelta(days=1)  # snapshots older than this are not a current drawdown or margin reading


@dataclass(frozen=True)
class Rule:
    severity: str
    stop: bool = False  # stop the account's trading (flag off, DISABLE_TRADING): accounts' account_trading_stop
    close_positions: bool = False  # and CLOSE_ALL_POSITIONS before it

    @property
    def actions(self) -> tuple[str, ...]:
        """The EA commands the stop sends, in order: what `action_taken` records."""
        return ("close_all",) * (self.stop and self.close_positions) + ("disable_trading",) * self.stop


# What each event type does when it opens. Edit here to change the response; `action_taken` records it.
RISK_RULES: dict[str, Rule] = {
    "daily_loss_limit": Rule("critical", stop=True),
    "max_drawdown": Rule("critical", stop=True, close_positions=True),
    "margin_level": Rule("critical", stop=True),
    "trade_latency": Rule("warning"),
    "price_deviation": Rule("warning"),
    "ea_connectivity": Rule("warning"),
}


@dataclass(frozen=True)
class Breach:
    account_id: UUID
    event_type: str
    message: str
    threshold: Decimal | None
    current: Decimal | None


# --- Checks: each returns the breaches among one tenant's accounts (called under that tenant's context) -----------


def _money(value) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def daily_loss_check(now: datetime) -> list[Breach]:
    day = now.astimezone(UTC).date()  # the UTC day, whatever zone `now` carries
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return [
        Breach(
            row["account_id"],
            "daily_loss_limit",
            f"Daily loss limit exceeded: {_money(row['daily_pnl'])}",
            -row["max_daily_loss"],
            row["daily_pnl"],
        )
        for row in selectors.daily_pnl(start=start, end=start + timedelta(days=1))
        if row["max_daily_loss"] > 0 and row["daily_pnl"] < -row["max_daily_loss"]
    ]


def drawdown_check(now: datetime) -> list[Breach]:
    breaches = []
    for row in selectors.balances_latest(since=now - BALANCE_WINDOW, now=now):
        peak = row["peak_balance"]
        if not peak or peak <= 0 or row["max_drawdown_percent"] <= 0:
            continue
        drawdown = ((peak - row["equity"]) / peak * 100).quantize(Decimal("0.01"))
        if drawdown > row["max_drawdown_percent"]:
            limit = row["max_drawdown_percent"]
            message = f"Drawdown {drawdown}% from peak {_money(peak)} exceeds {limit}%"
            breaches.append(Breach(row["account_id"], "max_drawdown", message, limit, drawdown))
    return breaches


def margin_check(now: datetime) -> list[Breach]:
    return [
        Breach(
            row["account_id"],
            "margin_level",
            f"Margin level {row['margin_level']}% below {row['min_margin_level']}%",
            row["min_margin_level"],
            row["margin_level"],
        )
        for row in selectors.balances_latest(since=now - BALANCE_WINDOW, now=now)
        if row["margin"] and row["margin_level"] is not None and row["margin_level"] < row["min_margin_level"]
    ]


def latency_check(now: datetime) -> list[Breach]:
    return [
        Breach(
            row["account_id"],
            "trade_latency",
            f"{row['slow']} execution(s) slower than {TRADE_LATENCY_LIMIT_MS} ms, worst {row['worst_latency_ms']} ms",
            Decimal(TRADE_LATENCY_LIMIT_MS),
            Decimal(row["worst_latency_ms"]),
        )
        for row in selectors.executions_slow(since=now - RECENT_WINDOW, now=now, limit_ms=TRADE_LATENCY_LIMIT_MS)
    ]


def deviation_check(now: datetime) -> list[Breach]:
    return [
        Breach(
            row["account_id"],
            "price_deviation",
            f"Broker/reference deviation {row['worst_deviation_percent']:.4f}% over {PRICE_DEVIATION_LIMIT_PERCENT}%",
            PRICE_DEVIATION_LIMIT_PERCENT,
            row["worst_deviation_percent"],
        )
        for row in selectors.quotes_deviating(since=now - RECENT_WINDOW, now=now, limit=PRICE_DEVIATION_LIMIT_PERCENT)
    ]


def connectivity_check(now: datetime) -> list[Breach]:
    """EAs silent for 2 minutes or offline (the account's connection state), and EAs still sending heartbeats that
    report a status other than online (the seed's §10.2 query: e.g. the terminal lost its broker)."""
    from trading.selectors import connectivity_problems

    breaches = {}
    for row in selectors.accounts_silent(silent_before=now - EA_SILENT_AFTER):
        seen = row["last_heartbeat_at"]
        silent_s = Decimal(int((now - seen).total_seconds())) if seen else None
        message = f"EA {row['connection_status']}, no heartbeat for {'ever' if silent_s is None else f'{silent_s} s'}"
        breaches[row["account_id"]] = Breach(
            row["account_id"], "ea_connectivity", message, Decimal(EA_SILENT_AFTER.total_seconds()), silent_s
        )
    for row in connectivity_problems():
        if row["account_id"] not in breaches and row["status"] != "online":
            silent_s = Decimal(int(row["seconds_since_last_heartbeat"]))
            breaches[row["account_id"]] = Breach(
                row["account_id"], "ea_connectivity", f"EA reports {row['status']!r}",
                Decimal(EA_SILENT_AFTER.total_seconds()), silent_s,
            )  # fmt: skip
    return list(breaches.values())


Check = Callable[[datetime], list[Breach]]
FIVE_MINUTE_CHECKS: dict[str, Check] = {
    "daily_loss_limit": daily_loss_check,
    "max_drawdown": drawdown_check,
    "margin_level": margin_check,
}
ONE_MINUTE_CHECKS: dict[str, Check] = {
    "trade_latency": latency_check,
    "price_deviation": deviation_check,
    "ea_connectivity": connectivity_check,
}


# --- Runs -----------------------------------------------------------------------------------------------------


def risk_checks_run(*, now: datetime | None = None) -> dict:
    """Every 5 minutes (Celery beat): daily loss (UTC day), drawdown from peak balance, margin level."""
    return _run(FIVE_MINUTE_CHECKS, now or timezone.now())


def risk_alerts_run(*, now: datetime | None = None) -> dict:
    """Every minute (Celery beat): trade latency, broker/reference deviation, EA connectivity."""
    return _run(ONE_MINUTE_CHECKS, now or timezone.now())


def _run(checks: dict[str, Check], now: datetime) -> dict:
    totals = {"opened": 0, "resolved": 0, "failed_tenants": 0}
    tenant_ids = list(Tenant.objects.filter(is_active=True).values_list("id", flat=True))  # identity: operator role
    for tenant_id in tenant_ids:
        try:
            opened, resolved = risk_tenant_check(tenant_id=tenant_id, checks=checks, now=now)
        except Exception:
            log.exception("risk checks failed", extra={"tenant_id": tenant_id, "task": "risk_checks"})
            totals["failed_tenants"] += 1
            continue
        totals["opened"] += opened
        totals["resolved"] += resolved
    return totals


def risk_tenant_check(*, tenant_id: UUID, checks: dict[str, Check], now: datetime) -> tuple[int, int]:
    """One tenant, one transaction: open/act/notify for new breaches, resolve events whose condition cleared."""
    opened = resolved = 0
    with tenant_context(tenant_id):
        for event_type, check in checks.items():
            breaches = check(now)
            for breach in breaches:
                opened += risk_breach_record(breach=breach, now=now)
            breaching = {breach.account_id for breach in breaches}
            for event in RiskEvent.objects.filter(event_type=event_type, status=RiskEvent.Status.OPEN):
                if event.account_id not in breaching:
                    resolved += risk_event_resolve(event=event, now=now)
    return opened, resolved


def risk_breach_record(*, breach: Breach, now: datetime) -> int:
    """Record a breach (under its tenant's context); 1 if this call opened the event and acted on it, else 0."""
    rule = RISK_RULES[breach.event_type]
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        cursor.execute(
            "SELECT trigger_risk_event(%s, %s, %s, %s, %s, %s, %s)",
            [
                breach.account_id,
                breach.event_type,
                rule.severity,
                breach.message,
                breach.threshold,
                breach.current,
                ",".join(rule.actions) or "notify",
            ],
        )
        event_id = cursor.fetchone()[0]
        # The claim: only the run that sees the event un-notified acts. notified_at = when notifications were sent
        # (dispatched after commit; a failed send is logged, not retried).
        if RiskEvent.objects.filter(id=event_id, notified_at__isnull=True).update(notified_at=now) != 1:
            return 0
        event = RiskEvent.objects.select_related("account").get(id=event_id)
        risk_actions_take(event=event, rule=rule)
        transaction.on_commit(partial(risk_event_notify_later, payload=_payload(event)), using=SERVICE)
    return 1


def risk_actions_take(*, event: RiskEvent, rule: Rule) -> None:
    """The rule's stop, through the one stop-trading service (audited; reaches the EA after commit)."""
    if rule.stop:
        account_trading_stop(
            account=event.account, actor=RISK_ACTOR, reason=f"{event.event_type}: {event.message}",
            close_positions=rule.close_positions,
        )  # fmt: skip


def risk_event_resolve(*, event: RiskEvent, now: datetime) -> int:
    """Close an open event whose condition cleared (claimed by one conditional update) and audit it."""
    updated = RiskEvent.objects.filter(id=event.id, status=RiskEvent.Status.OPEN).update(
        status=RiskEvent.Status.RESOLVED, resolved_at=now
    )
    if updated != 1:
        return 0
    audit_record(
        tenant_id=event.tenant_id, event_type=f"risk_{event.event_type}_resolved", category="risk", action="resolve",
        description=f"Resolved: {event.message}", account_id=event.account_id,
        metadata={"risk_event_id": event.id, "opened_at": event.time, "resolved_at": now},
    )  # fmt: skip
    return 1


# --- Notifications (after commit; failures are logged, never raised) -------------------------------------------


def _payload(event: RiskEvent) -> dict:
    account: MT5Account = event.account
    return json.loads(json.dumps({
        "risk_event_id": event.id, "time": event.time, "tenant_id": event.tenant_id, "account_id": event.account_id,
        "account": str(account), "event_type": event.event_type, "severity": event.severity,
        "message": event.message, "threshold": event.threshold_value, "current": event.current_value,
        "action_taken": event.action_taken,
    }, cls=DjangoJSONEncoder))  # fmt: skip


def risk_event_notify_later(*, payload: dict) -> None:
    """After commit: hand the notification to a Celery worker, so a slow mail server or webhook never holds up the
    monitor (a storm of connectivity events, say); if the broker cannot take it, send it here and now."""
    from compliance.tasks import risk_event_notify_task

    try:
        risk_event_notify_task.delay(payload=payload)
    except Exception:
        log.exception("risk notification not queued; sending it inline", extra={"task": "risk_notify"})
        risk_event_notify(payload=payload)


def risk_event_notify(*, payload: dict) -> None:
    """E-mail and webhook for a newly opened risk event (after commit; failures logged, never raised)."""
    operators_notify(
        subject=f"[Suho risk] {payload['severity']} {payload['event_type']} on {payload['account']}",
        payload=payload,
        context={"tenant_id": payload["tenant_id"], "account_id": payload["account_id"], "task": "risk_notify"},
    )
