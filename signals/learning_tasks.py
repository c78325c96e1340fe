"""Celery tasks of the learning loop: thin, each calls one function (scheduled in suho.schedules)."""

from __future__ import annotations

from celery import shared_task


@shared_task
def feedback_export_task() -> str:
    """Daily: the closed signals not yet exported, as CSV, marked included_in_training."""
    from signals.learning import feedback_export

    return str(feedback_export())


@shared_task
def model_retrain_task() -> dict:
    """Weekly (ARCHITECTURE §8): a new active reference model, or the reason there is none."""
    from signals.learning import ModelRetrainError, model_retrain

    try:
        version = model_retrain()
    except ModelRetrainError as exc:
        return {"skipped": str(exc)}
    return {"version": version.version, "samples": version.samples, "metrics": version.metrics}


@shared_task
def reference_strategy_task() -> int:
    """Every minute: reference-strategy signals for the accounts that opted in (REFERENCE_STRATEGY_ENABLED)."""
    from signals.reference_strategy import reference_strategy_run

    return len(reference_strategy_run())
