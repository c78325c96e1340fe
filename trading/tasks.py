"""Celery tasks of the trading app: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from trading.services import balance_rollup_refresh


@shared_task
def balance_rollup_refresh_task() -> int:
    """Every 5 minutes (suho.schedules): the seed's rollup window, all tenants."""
    return balance_rollup_refresh()


@shared_task
def accounts_mark_silent_offline_task() -> int:
    """Every minute (suho.schedules): EAs silent for two minutes are offline."""
    from trading.connection import accounts_mark_silent_offline

    return accounts_mark_silent_offline()


@shared_task
def bridge_applied_prune_task() -> int:
    """Hourly (suho.schedules): the data bridge's applied-batch records the stream can no longer redeliver."""
    from trading.bridge import bridge_applied_prune

    return bridge_applied_prune()
