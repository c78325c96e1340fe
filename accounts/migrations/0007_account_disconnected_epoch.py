from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_live_session_monotonic"),
    ]

    operations = [
        migrations.AddField(
            model_name="mt5account",
            name="disconnected_epoch",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
