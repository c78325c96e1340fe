# The last run of each scheduled task (suho.beat), for the operator dashboard's "is beat still running".

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("suho", "0003_outbox_parking"),
    ]

    operations = [
        migrations.CreateModel(
            name="BeatTaskRun",
            fields=[
                ("task", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "state",
                    models.CharField(
                        help_text="STARTED, then Celery's end state: SUCCESS, FAILURE, RETRY", max_length=20
                    ),
                ),
            ],
            options={"db_table": "suho_beat_task_runs"},
        ),
    ]
