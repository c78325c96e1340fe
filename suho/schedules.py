"""Celery beat's schedule, one entry per recurring job (ARCHITECTURE §8). Tasks are thin: they call services."""

from datetime import timedelta

from celery.schedules import crontab
from django.conf import settings

BEAT_SCHEDULE = {
    "partitions-upkeep": {"task": "suho.tasks.partitions_upkeep", "schedule": timedelta(hours=1)},
    "outbox-drain": {"task": "suho.tasks.outbox_drain_task", "schedule": timedelta(seconds=5)},
    "balance-rollup-refresh": {
        "task": "trading.tasks.balance_rollup_refresh_task",
        "schedule": timedelta(minutes=5),
    },
    "ea-connectivity": {
        "task": "trading.tasks.accounts_mark_silent_offline_task",
        "schedule": timedelta(minutes=1),
    },
    "bridge-applied-prune": {"task": "trading.tasks.bridge_applied_prune_task", "schedule": timedelta(hours=1)},
    "risk-checks": {"task": "compliance.tasks.risk_checks_task", "schedule": timedelta(minutes=5)},
    "risk-alerts": {"task": "compliance.tasks.risk_alerts_task", "schedule": timedelta(minutes=1)},
    "signals-expire-stale": {"task": "signals.tasks.signals_expire_stale_task", "schedule": timedelta(seconds=15)},
    "compliance-reports-daily": {
        "task": "compliance.tasks.compliance_reports_daily_task",
        "schedule": crontab(hour=0, minute=30),  # the previous UTC day, once its last trades have arrived
    },
    "audit-verify-daily": {"task": "compliance.tasks.audit_verify_task", "schedule": crontab(hour=1, minute=0)},
    "feedback-export": {"task": "signals.learning_tasks.feedback_export_task", "schedule": timedelta(days=1)},
    "model-retrain": {"task": "signals.learning_tasks.model_retrain_task", "schedule": timedelta(weeks=1)},
    "reference-strategy": {
        "task": "signals.learning_tasks.reference_strategy_task",
        "schedule": timedelta(seconds=settings.REFERENCE_STRATEGY_INTERVAL_S),
    },
}
