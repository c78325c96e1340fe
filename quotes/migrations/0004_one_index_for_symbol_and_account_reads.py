"""The tick table's two secondary indexes become one, (tenant, symbol, account, time DESC), which serves both the
seed's tenant + symbol reads and the latest quote of an account's symbol: each index costs every tick an insert
(decision 0032). The new index is built before the old ones go, so the latest-quote read always has one; building
it locks writes to mt5_broker_quotes for as long as it takes: the gateways' batchers hold what arrives meanwhile
(up to MAX_BUFFERED_ROWS, ~25 s of the bench's load; beyond it the oldest ticks are dropped and counted)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("quotes", "0003_time_series_key_with_tenant"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="brokerquote",
            index=models.Index(
                models.F("tenant"),
                models.F("symbol"),
                models.F("account"),
                models.OrderBy(models.F("time"), descending=True),
                name="idx_quotes_symbol_acct_time",
            ),
        ),
        migrations.RemoveIndex(model_name="brokerquote", name="idx_quotes_tenant_symbol_time"),
        migrations.RemoveIndex(model_name="brokerquote", name="idx_quotes_acct_symbol_time"),
    ]
