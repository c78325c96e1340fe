"""Celery tasks of the platform plumbing: thin, each calls one function."""

from __future__ import annotations

from celery import shared_task

from suho import retention, timeseries


@shared_task
def partitions_upkeep() -> dict:
    """Hourly (suho.schedules): partitions ahead and time-series retention, then the other tables' retention."""
    return {"partitions": timeseries.partitions_upkeep(), "retention": retention.retention_upkeep()}
