"""The audit log's key gains tenant_id (TimescaleDB's hash dimension; the same key on both paths)."""

from django.db import migrations

import suho.timeseries


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0003_compliance_report_immutable"),
    ]

    operations = [
        suho.timeseries.TimeSeriesKeyWithTenant("mt5_audit_log"),
    ]
