"""Celery tasks of the platform plumbing: thin, each calls one function."""

from __future__ import annotations

from celery import shared_task

from suho import outbox, retention, timeseries


@shared_task
def partitions_upkeep() -> dict:
    """Hourly (suho.schedules): partitions ahead and time-series retention, then the other tables' retention."""
    return {"partitions": timeseries.partitions_upkeep(), "retention": retention.retention_upkeep()}


@shared_task
def outbox_drain_task() -> int:
    """Every 5 s (suho.schedules): publish what the after-commit kick could not (NATS down, a crash)."""
    published = outbox.outbox_drain()
    outbox.outbox_prune()
    return published
