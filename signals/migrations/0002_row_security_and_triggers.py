"""Signal tables under RLS; the lifecycle guard; the execution-tracking triggers of seed §7.2."""

from django.db import migrations

from quotes.instruments import pip_size_sql
from signals.lifecycle import transition_trigger_sql
from suho.timeseries import EnableRowSecurity

# The close half, shared by the insert trigger (an order that arrives already closed) and the update trigger.
CLOSE_EXECUTION = """
CREATE OR REPLACE FUNCTION suho_close_signal_execution(o mt5_trade_orders) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  direction integer := CASE WHEN upper(o.order_type) LIKE 'SELL%' THEN -1 ELSE 1 END;
BEGIN
  UPDATE mt5_signal_executions e SET
    trade_closed = true,
    close_price = o.close_price,
    close_reason = coalesce(o.close_reason, ''),
    closed_at = coalesce(o.close_time, now()),
    profit = o.profit,
    profit_pips = round((o.close_price - o.open_price) * direction / suho_pip_size(o.symbol), 2)
  WHERE e.signal_id = o.signal_id AND e.order_id = o.order_id;
  UPDATE mt5_trading_signals SET status = 'closed', closed_at = coalesce(o.close_time, now())
  WHERE signal_id = o.signal_id AND status = 'executed';
END $$;
"""

TRACK_SIGNAL_EXECUTION = """
CREATE OR REPLACE FUNCTION track_signal_execution() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s mt5_trading_signals%ROWTYPE;
  pip numeric := suho_pip_size(NEW.symbol);
  direction integer := CASE WHEN upper(NEW.order_type) LIKE 'SELL%' THEN -1 ELSE 1 END;
  spread numeric;
  volatility numeric;
BEGIN
  SELECT * INTO s FROM mt5_trading_signals WHERE signal_id = NEW.signal_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NEW;
  END IF;
  SELECT q.spread INTO spread FROM mt5_broker_quotes q
    WHERE q.tenant_id = NEW.tenant_id AND q.account_id = NEW.account_id AND q.symbol = NEW.symbol
      AND q.time <= NEW.time + interval '5 seconds'
    ORDER BY q.time DESC LIMIT 1;
  SELECT stddev_samp((q.bid + q.ask) / 2) / nullif(avg((q.bid + q.ask) / 2), 0) INTO volatility
    FROM mt5_broker_quotes q
    WHERE q.tenant_id = NEW.tenant_id AND q.account_id = NEW.account_id AND q.symbol = NEW.symbol
      AND q.time BETWEEN NEW.time - interval '5 minutes' AND NEW.time;
  INSERT INTO mt5_signal_executions (
    execution_id, time, tenant_id, account_id, signal_id, order_id, ticket, signal_entry_price,
    actual_entry_price, price_difference, slippage_pips, execution_latency_ms, spread_at_execution,
    market_volatility, trade_closed, close_reason, feedback_status, ea_rejection_reason
  ) VALUES (
    gen_random_uuid(), NEW.time, NEW.tenant_id, NEW.account_id, NEW.signal_id, NEW.order_id, NEW.ticket,
    s.entry_price, NEW.open_price, NEW.open_price - s.entry_price,
    round((NEW.open_price - s.entry_price) * direction / pip, 2),
    CASE WHEN s.sent_to_ea_at IS NOT NULL
      THEN greatest(0, round(extract(epoch FROM (NEW.time - s.sent_to_ea_at)) * 1000))::integer END,
    spread, round(volatility, 6), false, '', 'pending', ''
  ) ON CONFLICT (signal_id) DO NOTHING;
  IF s.status = 'pending' THEN
    UPDATE mt5_trading_signals SET status = 'sent', sent_to_ea_at = coalesce(sent_to_ea_at, NEW.time)
      WHERE signal_id = s.signal_id;
    s.status := 'sent';
  END IF;
  IF s.status = 'sent' THEN
    UPDATE mt5_trading_signals SET status = 'executed', executed_at = NEW.time WHERE signal_id = s.signal_id;
  END IF;
  IF NEW.status = 'closed' THEN
    PERFORM suho_close_signal_execution(NEW);
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS track_signal_execution ON mt5_trade_orders;
CREATE TRIGGER track_signal_execution AFTER INSERT ON mt5_trade_orders
  FOR EACH ROW WHEN (NEW.signal_id IS NOT NULL) EXECUTE FUNCTION track_signal_execution();
"""

UPDATE_SIGNAL_EXECUTION_RESULT = """
CREATE OR REPLACE FUNCTION update_signal_execution_result() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM suho_close_signal_execution(NEW);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS update_signal_execution_result ON mt5_trade_orders;
CREATE TRIGGER update_signal_execution_result AFTER UPDATE OF status ON mt5_trade_orders
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status = 'closed' AND NEW.signal_id IS NOT NULL)
  EXECUTE FUNCTION update_signal_execution_result();
"""


class Migration(migrations.Migration):
    dependencies = [("signals", "0001_initial"), ("trading", "0001_initial"), ("quotes", "0001_initial")]
    operations = [
        EnableRowSecurity("mt5_trading_signals"),
        EnableRowSecurity("mt5_signal_executions"),
        migrations.RunSQL(pip_size_sql(), "DROP FUNCTION IF EXISTS suho_pip_size(text)"),
        migrations.RunSQL(
            transition_trigger_sql(),
            "DROP TRIGGER IF EXISTS signal_transition_check ON mt5_trading_signals;"
            "DROP FUNCTION IF EXISTS suho_signal_transition_check()",
        ),
        migrations.RunSQL(CLOSE_EXECUTION, "DROP FUNCTION IF EXISTS suho_close_signal_execution(mt5_trade_orders)"),
        migrations.RunSQL(
            TRACK_SIGNAL_EXECUTION,
            "DROP TRIGGER IF EXISTS track_signal_execution ON mt5_trade_orders;"
            "DROP FUNCTION IF EXISTS track_signal_execution()",
        ),
        migrations.RunSQL(
            UPDATE_SIGNAL_EXECUTION_RESULT,
            "DROP TRIGGER IF EXISTS update_signal_execution_result ON mt5_trade_orders;"
            "DROP FUNCTION IF EXISTS update_signal_execution_result()",
        ),
    ]
