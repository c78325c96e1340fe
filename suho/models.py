"""Plumbing tables: the transactional outbox of messages for NATS, the last run of each scheduled task."""

from __future__ import annotations

from django.db import models

from suho.fields import tenant_fk


class OutboxMessage(models.Model):
    """A message written in the same transaction as the change it announces; published after commit and retried
    from here until JetStream has stored it (de-duplicated on `msg_id`), so a failed publish is never lost.

    A message JetStream refuses for good (no stream for its subject, too large) is parked after a few refusals
    (`parked_at`): kept for operators, skipped by the drain so the messages behind it flow, re-queued from the admin.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_fk()
    subject = models.CharField(max_length=255)
    payload = models.BinaryField()
    msg_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    refusals = models.PositiveSmallIntegerField(default=0)  # permanent refusals since it was (re-)queued
    retry_at = models.DateTimeField(null=True, blank=True)  # backoff after a refusal: not retried before this
    parked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "suho_outbox"
        indexes = [
            models.Index(
                fields=["id"],
                name="idx_outbox_pending",
                condition=models.Q(published_at__isnull=True, parked_at__isnull=True),
            ),
            models.Index(fields=["id"], name="idx_outbox_parked", condition=models.Q(parked_at__isnull=False)),
            models.Index(fields=["published_at"], name="idx_outbox_published_at"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({self.state})"

    @property
    def state(self) -> str:
        return "published" if self.published_at else "parked" if self.parked_at else "pending"


class BeatTaskRun(models.Model):
    """The last run of each scheduled task (suho.schedules), one row per task, written by the worker as the task
    starts and ends (suho.beat): the operator dashboard warns when one is overdue, so a dead beat is seen.

    Platform-wide, not a tenant's: no tenant_id, no row-level security.
    """

    task = models.CharField(max_length=200, primary_key=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)  # NULL while the run started last is going on
    state = models.CharField(max_length=20, help_text="STARTED, then Celery's end state: SUCCESS, FAILURE, RETRY")

    class Meta:
        db_table = "suho_beat_task_runs"

    def __str__(self) -> str:
        return f"{self.task} ({self.state} at {self.started_at:%Y-%m-%d %H:%M:%S})"
