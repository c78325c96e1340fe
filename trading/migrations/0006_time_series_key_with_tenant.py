"""The time-series tables' keys gain tenant_id (TimescaleDB's hash dimension; the same key on both paths)."""

from django.db import migrations

import suho.timeseries


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0005_bridge_applied_msg_id"),
    ]

    operations = [
        suho.timeseries.TimeSeriesKeyWithTenant("mt5_account_balance_history"),
        suho.timeseries.TimeSeriesKeyWithTenant("mt5_ea_heartbeat"),
        suho.timeseries.TimeSeriesKeyWithTenant("mt5_trade_orders"),
    ]
