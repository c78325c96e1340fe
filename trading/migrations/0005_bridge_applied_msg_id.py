"""suho_bridge_applied is keyed on the batch's message id instead of its stream sequence: a stream deleted and created
again restarts its sequences at 1, and a new batch must never be taken for an old one. Rows recorded before keep a
key made of their stream and sequence (no new batch can have it). applied_at is indexed for the prune.

Upgrading a deployment in bridge mode: stop the bridges (SIGTERM: they finish and ack what they fetched), migrate,
then start the new ones. A batch an old bridge committed but had not acked would come back under its new key and be
applied a second time."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0004_bridge_applied"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="bridgeapplied", name="bridge_applied_once"),
        migrations.AddField(
            model_name="bridgeapplied", name="msg_id", field=models.CharField(max_length=100, null=True)
        ),
        migrations.RunSQL(
            "UPDATE suho_bridge_applied SET msg_id = stream || ':' || seq", reverse_sql=migrations.RunSQL.noop
        ),
        migrations.AlterField(
            model_name="bridgeapplied", name="msg_id", field=models.CharField(max_length=100, unique=True)
        ),
        migrations.AlterField(
            model_name="bridgeapplied",
            name="applied_at",
            field=models.DateTimeField(auto_now_add=True, db_index=True),
        ),
    ]
