"""The last run of each scheduled task: recorded by the worker around every run (Celery's task_prerun/postrun,
connected in suho.celery), read by the operator dashboard, which warns when a task is overdue.

Recorded where the task runs, not where beat sends it: a task beat sent that no worker ran is exactly what must
show up as overdue. A manual run of the same task counts as a run too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.schedules import crontab
from django.db import DatabaseError
from django.utils import timezone

from suho.models import BeatTaskRun
from suho.schedules import BEAT_SCHEDULE

log = logging.getLogger(__name__)

OVERDUE_GRACE_MIN = timedelta(minutes=1)  # a run this late after its due time is overdue, or 10 % of the period
SCHEDULED_TASKS = frozenset(entry["task"] for entry in BEAT_SCHEDULE.values())


def beat_task_started(*, task: str, now: datetime | None = None) -> None:
    """Record that a scheduled task started (one upsert); a database error is logged, never raised into the task."""
    if task not in SCHEDULED_TASKS:
        return
    row = BeatTaskRun(task=task, started_at=now or timezone.now(), finished_at=None, state="STARTED")
    try:
        BeatTaskRun.objects.bulk_create([row], update_conflicts=True, unique_fields=["task"],
                                        update_fields=["started_at", "finished_at", "state"])  # fmt: skip
    except DatabaseError:
        log.warning("could not record the start of %s", task, exc_info=True)


def beat_task_finished(*, task: str, state: str, now: datetime | None = None) -> None:
    if task not in SCHEDULED_TASKS:
        return
    try:
        BeatTaskRun.objects.filter(task=task).update(finished_at=now or timezone.now(), state=(state or "")[:20])
    except DatabaseError:
        log.warning("could not record the end of %s", task, exc_info=True)


@dataclass(frozen=True)
class BeatTaskStatus:
    name: str  # the schedule entry's
    task: str
    every: str  # the schedule, as an operator reads it
    started_at: datetime | None
    finished_at: datetime | None
    state: str
    due_by: datetime | None  # the next run should have started by then (grace included); None: never ran
    overdue: bool


def _next_due(schedule, last: datetime) -> datetime:
    """When the run after one that started at `last` is due (a timedelta or a crontab, in UTC)."""
    if isinstance(schedule, timedelta):
        return last + schedule
    start, delta, _ = schedule.remaining_delta(last)
    return start + delta


def _every(schedule) -> str:
    if isinstance(schedule, crontab):
        return f"cron {schedule._orig_minute} {schedule._orig_hour} (UTC)"
    seconds = int(schedule.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"every {seconds // size} {unit}"
    return f"every {seconds} s"


def beat_tasks_status(*, now: datetime | None = None) -> list[BeatTaskStatus]:
    """Every schedule entry with its task's last run; overdue when the next run has not started by its due time
    plus a grace (10 % of the period, at least OVERDUE_GRACE_MIN). A task that never ran is not flagged: a fresh
    deployment has daily tasks that have not run yet."""
    now = now or timezone.now()
    runs = {run.task: run for run in BeatTaskRun.objects.all()}
    statuses = []
    for name, entry in BEAT_SCHEDULE.items():
        run = runs.get(entry["task"])
        due_by = None
        if run is not None:
            due = _next_due(entry["schedule"], run.started_at)
            due_by = due + max(OVERDUE_GRACE_MIN, (due - run.started_at) / 10)
        statuses.append(BeatTaskStatus(
            name=name, task=entry["task"], every=_every(entry["schedule"]),
            started_at=run.started_at if run else None, finished_at=run.finished_at if run else None,
            state=run.state if run else "", due_by=due_by, overdue=due_by is not None and now > due_by,
        ))  # fmt: skip
    return statuses
