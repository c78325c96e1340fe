from django.db import migrations

from suho.timeseries import EnableRowSecurity


class Migration(migrations.Migration):
    dependencies = [("trading", "0001_initial")]
    operations = [EnableRowSecurity("mt5_trade_events"), EnableRowSecurity("mt5_balance_5min")]
