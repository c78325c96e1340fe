# On TimescaleDB, the chunks of the next hours made now (decision 0028): upkeep keeps them ahead from then on.

from django.db import migrations

import suho.timeseries


class Migration(migrations.Migration):
    dependencies = [
        ("suho", "0004_beat_task_runs"),
        ("compliance", "0004_time_series_key_with_tenant"),
        ("quotes", "0003_time_series_key_with_tenant"),
        ("trading", "0006_time_series_key_with_tenant"),
    ]

    operations = [
        migrations.RunPython(suho.timeseries.chunks_ahead_now, migrations.RunPython.noop, elidable=True),
    ]
