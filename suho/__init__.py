"""Project plumbing: settings, routing, the Celery app, tenant context, time-series helpers, dev stack."""

from suho.celery import app as celery_app

__all__ = ["celery_app"]
