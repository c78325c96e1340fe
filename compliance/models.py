"""Audit trail, risk events, compliance reports and consents (seed §8)."""

from __future__ import annotations

import uuid

from django.db import models

from suho.audit import Severity
from suho.fields import account_fk, tenant_fk


class AuditLog(models.Model):
    """Append-only, hash-chained per tenant (a trigger fills `prev_hash`/`row_hash`). Time series: 7 years."""

    Severity = Severity  # suho.audit's, which the apps that audit use

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    tenant = tenant_fk(null=True, blank=True)
    user_id = models.UUIDField(null=True, blank=True)
    account_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=60)
    event_category = models.CharField(max_length=30)
    action = models.CharField(max_length=30)
    event_description = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    metadata = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    chain_seq = models.BigIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    row_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "mt5_audit_log"
        indexes = [
            models.Index("tenant", models.F("time").desc(), name="idx_audit_log_tenant_time"),
            models.Index("tenant", "event_category", models.F("time").desc(), name="idx_audit_log_category"),
            models.Index("tenant", "chain_seq", name="idx_audit_log_chain"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.event_type}"


class RiskEvent(models.Model):
    """A breached risk limit; at most one open event per account and type (seed §8.3)."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField()
    tenant = tenant_fk()
    account = account_fk()
    event_type = models.CharField(max_length=40)
    severity = models.CharField(max_length=10, default="warning")
    message = models.TextField()
    threshold_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    current_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    action_taken = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mt5_risk_events"
        indexes = [models.Index("tenant", "account", models.F("time").desc(), name="idx_risk_events_acct_time")]
        constraints = [
            models.UniqueConstraint(
                "tenant", "account", "event_type", condition=models.Q(status="open"), name="risk_event_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.status})"


class ComplianceReport(models.Model):
    """A generated regulatory report; immutable once written, with a checksum of its content."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField(help_text="Generated")
    tenant = tenant_fk()
    report_type = models.CharField(max_length=40)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    content = models.JSONField(default=dict)
    checksum = models.CharField(max_length=64)
    generated_by = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "mt5_compliance_reports"
        indexes = [models.Index("tenant", "report_type", models.F("time").desc(), name="idx_compliance_reports")]

    def __str__(self) -> str:
        return f"{self.report_type} {self.period_start:%Y-%m-%d}–{self.period_end:%Y-%m-%d}"


class UserConsent(models.Model):
    """GDPR consent: what the user agreed to, which version, when and from where; withdrawal keeps the row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField()
    tenant = tenant_fk()
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=60)
    version = models.CharField(max_length=20)
    granted = models.BooleanField(default=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "mt5_user_consents"
        indexes = [models.Index("tenant", "user", "purpose", name="idx_user_consents_user_purpose")]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.version} ({'granted' if self.granted else 'withdrawn'})"
