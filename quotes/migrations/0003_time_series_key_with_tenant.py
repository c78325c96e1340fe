"""The tick table's key gains tenant_id (TimescaleDB's hash dimension; the same key on both paths)."""

from django.db import migrations

import suho.timeseries


class Migration(migrations.Migration):
    dependencies = [
        ("quotes", "0002_broker_quotes_no_db_foreign_keys"),
    ]

    operations = [
        suho.timeseries.TimeSeriesKeyWithTenant("mt5_broker_quotes"),
    ]
