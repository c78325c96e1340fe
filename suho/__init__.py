"""Project plumbing: settings, routing, the Celery app, tenant context, time-series helpers, dev stack.

The Celery app is loaded by SuhoConfig.ready(), not here: `python -m suho.devstack` imports this package before
any settings exist and must not set DJANGO_SETTINGS_MODULE for the commands it runs.
"""
