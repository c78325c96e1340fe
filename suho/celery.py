"""The Celery app: Redis broker, tasks discovered in each Django app, beat schedule in suho.schedules; every run
of a scheduled task is recorded (suho.beat) for the operator dashboard."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "suho.settings")

app = Celery("suho")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _install_schedule(sender, **kwargs):
    from suho.schedules import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE


@task_prerun.connect(dispatch_uid="suho_beat_task_started")
def _record_start(sender=None, **kwargs):
    from suho.beat import beat_task_started

    beat_task_started(task=sender.name)


@task_postrun.connect(dispatch_uid="suho_beat_task_finished")
def _record_end(sender=None, state=None, **kwargs):
    from suho.beat import beat_task_finished

    beat_task_finished(task=sender.name, state=state or "")


@worker_process_shutdown.connect(dispatch_uid="suho_outbox_marks")
def _outbox_marks_wait(**kwargs):
    """A pool process that exits lets its queued outbox marks finish (bounded), as a web process does at drain."""
    from suho.outbox import outbox_marks_wait

    outbox_marks_wait()
