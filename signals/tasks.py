"""Celery tasks of the signals app: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from signals.services import signals_expire_stale


@shared_task
def signals_expire_stale_task() -> int:
    """Every 15 s (suho.schedules), so a signal expires within 30 s of its `valid_until`."""
    return signals_expire_stale()
