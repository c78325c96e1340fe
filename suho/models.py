"""Plumbing tables: the transactional outbox of messages for NATS."""

from __future__ import annotations

from django.db import models

from suho.fields import tenant_fk


class OutboxMessage(models.Model):
    """A message written in the same transaction as the change it announces; published after commit and retried
    from here until JetStream has stored it (de-duplicated on `msg_id`), so a failed publish is never lost."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_fk()
    subject = models.CharField(max_length=255)
    payload = models.BinaryField()
    msg_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "suho_outbox"
        indexes = [
            models.Index(fields=["id"], name="idx_outbox_unpublished", condition=models.Q(published_at__isnull=True)),
            models.Index(fields=["published_at"], name="idx_outbox_published_at"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({'published' if self.published_at else 'pending'})"
