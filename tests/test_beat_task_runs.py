"""The last run of each scheduled task is recorded by the worker around the run (suho.beat), which the operator
dashboard reads to flag an overdue task; tasks outside the schedule are not recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from suho.beat import beat_tasks_status
from suho.models import BeatTaskRun
from suho.schedules import BEAT_SCHEDULE
from suho.tasks import outbox_drain_task


def _runs() -> dict:
    return {run.task: run for run in BeatTaskRun.objects.all()}


def test_a_scheduled_tasks_run_is_recorded_with_its_start_end_and_state(committed):
    before = timezone.now()
    outbox_drain_task.apply()
    run = _runs()["suho.tasks.outbox_drain_task"]
    assert before <= run.started_at <= run.finished_at <= timezone.now()
    assert run.state == "SUCCESS"
    status = {s.name: s for s in beat_tasks_status()}["outbox-drain"]
    assert status.started_at == run.started_at and not status.overdue


def _status(name: str, now):
    return {s.name: s for s in beat_tasks_status(now=now)}[name]


def test_a_task_that_has_not_started_by_its_due_time_plus_grace_is_overdue(committed):
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    BeatTaskRun.objects.create(task="suho.tasks.outbox_drain_task", started_at=now - timedelta(seconds=64),
                               state="SUCCESS")  # fmt: skip
    BeatTaskRun.objects.create(task="compliance.tasks.compliance_reports_daily_task",
                               started_at=datetime(2026, 12, 3, 0, 30, tzinfo=UTC), state="SUCCESS")  # fmt: skip
    assert not _status("outbox-drain", now).overdue, "5 s schedule, 1 minute of grace"
    assert _status("outbox-drain", now + timedelta(seconds=2)).overdue
    daily_grace = timedelta(hours=2, minutes=24)  # 10 % of the day from one 00:30 run to the next
    assert _status("compliance-reports-daily", now).due_by == datetime(2026, 12, 4, 0, 30, tzinfo=UTC) + daily_grace
    assert not _status("compliance-reports-daily", datetime(2026, 12, 4, 2, 50, tzinfo=UTC)).overdue
    assert _status("compliance-reports-daily", datetime(2026, 12, 4, 3, 0, tzinfo=UTC)).overdue
    statuses = {s.name: s for s in beat_tasks_status(now=now)}
    assert statuses["model-retrain"].started_at is None and not statuses["model-retrain"].overdue
    assert list(statuses) == list(BEAT_SCHEDULE)
