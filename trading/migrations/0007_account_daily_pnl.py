"""Each account's realised profit per UTC day, kept by a trigger on mt5_trade_orders (decision 0029).

The risk gate's daily loss (seed §8.3) summed the profit of the orders closed today. The order table is partitioned
(TimescaleDB: chunked) by open time, and a trade closed today may have opened months ago, so that read could not be
pruned: every partition or chunk was planned and probed on every signal POST. The trigger adds a closed order's
profit to its close day's row, and takes it back when the order changes, in the writing transaction.
"""

import django.db.models.deletion
from django.db import migrations, models

from suho.timeseries import EnableRowSecurity

KEEP = """
CREATE OR REPLACE FUNCTION suho_account_daily_pnl_keep() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  counted_before boolean := TG_OP = 'UPDATE' AND OLD.status = 'closed' AND OLD.close_time IS NOT NULL
                            AND OLD.profit IS NOT NULL;
  counted_now boolean := NEW.status = 'closed' AND NEW.close_time IS NOT NULL AND NEW.profit IS NOT NULL;
BEGIN
  IF counted_before AND counted_now AND NEW.account_id = OLD.account_id AND NEW.close_time = OLD.close_time
     AND NEW.profit = OLD.profit THEN
    RETURN NULL;  -- the order changed, its realised profit did not
  END IF;
  IF counted_before THEN
    INSERT INTO mt5_account_daily_pnl AS d (tenant_id, account_id, day, realized, closed_trades)
    VALUES (OLD.tenant_id, OLD.account_id, (OLD.close_time AT TIME ZONE 'UTC')::date, -OLD.profit, -1)
    ON CONFLICT (account_id, day) DO UPDATE
      SET realized = d.realized + excluded.realized, closed_trades = d.closed_trades + excluded.closed_trades;
  END IF;
  IF counted_now THEN
    INSERT INTO mt5_account_daily_pnl AS d (tenant_id, account_id, day, realized, closed_trades)
    VALUES (NEW.tenant_id, NEW.account_id, (NEW.close_time AT TIME ZONE 'UTC')::date, NEW.profit, 1)
    ON CONFLICT (account_id, day) DO UPDATE
      SET realized = d.realized + excluded.realized, closed_trades = d.closed_trades + excluded.closed_trades;
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS trade_order_daily_pnl ON mt5_trade_orders;
CREATE TRIGGER trade_order_daily_pnl AFTER INSERT OR UPDATE ON mt5_trade_orders
  FOR EACH ROW EXECUTE FUNCTION suho_account_daily_pnl_keep();

-- The orders already closed: read and written without the forced row policies for this transaction only (DDL is
-- transactional: no other session sees them unforced).
ALTER TABLE mt5_trade_orders NO FORCE ROW LEVEL SECURITY;
ALTER TABLE mt5_account_daily_pnl NO FORCE ROW LEVEL SECURITY;
INSERT INTO mt5_account_daily_pnl (tenant_id, account_id, day, realized, closed_trades)
SELECT tenant_id, account_id, (close_time AT TIME ZONE 'UTC')::date, sum(profit), count(*)
  FROM mt5_trade_orders
 WHERE status = 'closed' AND close_time IS NOT NULL AND profit IS NOT NULL
 GROUP BY 1, 2, 3;
ALTER TABLE mt5_account_daily_pnl FORCE ROW LEVEL SECURITY;
ALTER TABLE mt5_trade_orders FORCE ROW LEVEL SECURITY;
"""

UNKEEP = """
DROP TRIGGER IF EXISTS trade_order_daily_pnl ON mt5_trade_orders;
DROP FUNCTION IF EXISTS suho_account_daily_pnl_keep();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_live_session_monotonic"),
        ("trading", "0006_time_series_key_with_tenant"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccountDailyPnl",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("realized", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                (
                    "closed_trades",
                    models.IntegerField(default=0, help_text="Closed trades with a profit in `realized`"),
                ),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.mt5account",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.tenant",
                    ),
                ),
            ],
            options={
                "verbose_name": "account daily P&L",
                "db_table": "mt5_account_daily_pnl",
                "constraints": [
                    models.UniqueConstraint(models.F("account"), models.F("day"), name="account_daily_pnl_account_day")
                ],
            },
        ),
        EnableRowSecurity("mt5_account_daily_pnl"),
        migrations.RunSQL(KEEP, UNKEEP),
    ]
