"""Celery tasks of the compliance app: thin, each calls one function."""

from __future__ import annotations

from celery import shared_task


@shared_task
def risk_checks_task() -> dict:
    """Every 5 minutes (suho.schedules): daily loss, drawdown, margin level."""
    from compliance.risk import risk_checks_run

    return risk_checks_run()


@shared_task
def risk_alerts_task() -> dict:
    """Every minute (suho.schedules): trade latency, price deviation, EA connectivity."""
    from compliance.risk import risk_alerts_run

    return risk_alerts_run()


@shared_task
def compliance_reports_daily_task() -> int:
    """Daily (suho.schedules): the previous UTC day's reports for every tenant."""
    from compliance.reports import compliance_reports_daily

    return compliance_reports_daily()


@shared_task
def audit_verify_task() -> int:
    """Daily (suho.schedules): every audit chain verified; a broken one is logged and sent to operators."""
    from compliance.audit import audit_verify_alert

    return audit_verify_alert()


@shared_task(ignore_result=True)
def risk_event_notify_task(*, payload: dict) -> None:
    """E-mail and webhook for one newly opened risk event (queued after commit by the risk monitor)."""
    from compliance.risk import risk_event_notify

    risk_event_notify(payload=payload)
