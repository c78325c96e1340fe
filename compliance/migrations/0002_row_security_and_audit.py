"""Compliance tables under RLS; the audit log append-only and hash-chained; the seed's §8 triggers."""

from django.conf import settings
from django.db import migrations

from suho.timeseries import EnableRowSecurity

# Canonical row text for the chain: fixed field order, time as integer microseconds (independent of TimeZone).
AUDIT_HASH = """
CREATE OR REPLACE FUNCTION suho_audit_hash(prev text, r mt5_audit_log) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT encode(sha256(convert_to(concat_ws('|',
    coalesce(prev, ''), coalesce(r.chain_seq::text, ''), (extract(epoch FROM r.time) * 1000000)::bigint,
    coalesce(r.tenant_id::text, ''), coalesce(r.user_id::text, ''), coalesce(r.account_id::text, ''),
    r.event_type, r.event_category, r.action, coalesce(r.event_description, ''), r.severity,
    coalesce(r.metadata::text, ''), coalesce(host(r.ip_address), '')), 'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION suho_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_hash text;
  last_seq bigint;
BEGIN
  -- One writer per tenant chain at a time; released at commit.
  PERFORM pg_advisory_xact_lock(hashtextextended('suho_audit:' || coalesce(NEW.tenant_id::text, 'platform'), 0));
  SELECT row_hash, chain_seq INTO last_hash, last_seq FROM mt5_audit_log
    WHERE tenant_id IS NOT DISTINCT FROM NEW.tenant_id AND chain_seq IS NOT NULL
    ORDER BY chain_seq DESC LIMIT 1;
  NEW.chain_seq := coalesce(last_seq, 0) + 1;
  NEW.prev_hash := coalesce(last_hash, '');
  NEW.time := coalesce(NEW.time, now());
  NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb);
  NEW.row_hash := suho_audit_hash(NEW.prev_hash, NEW);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS audit_chain ON mt5_audit_log;
CREATE TRIGGER audit_chain BEFORE INSERT ON mt5_audit_log FOR EACH ROW EXECUTE FUNCTION suho_audit_chain();

CREATE OR REPLACE FUNCTION suho_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Only the owner's partition upkeep (suho.timeseries) deletes: expired rows, and rows moving out of the default
  -- partition into a new one; it turns suho.audit_upkeep on for its own transaction. Nothing may change a row.
  IF TG_OP = 'DELETE' AND current_setting('suho.audit_upkeep', true) = 'on'
     AND (SELECT relowner FROM pg_class WHERE oid = TG_RELID) = (SELECT oid FROM pg_roles WHERE rolname = current_user)
  THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'mt5_audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS audit_append_only ON mt5_audit_log;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON mt5_audit_log
  FOR EACH ROW EXECUTE FUNCTION suho_audit_append_only();
"""

# seed §8.2 example 2: trade orders audit themselves.
TRADE_ORDER_AUDIT = """
CREATE OR REPLACE FUNCTION suho_trade_order_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  kind text;
  description text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    kind := 'trade_opened';
    description := format('Trade opened: #%s %s %s %s @ %s', NEW.ticket, NEW.order_type, NEW.volume, NEW.symbol,
                          NEW.open_price);
  ELSIF NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed' THEN
    kind := 'trade_closed';
    description := format('Trade closed: #%s @ %s, profit %s (%s)', NEW.ticket, NEW.close_price, NEW.profit,
                          NEW.close_reason);
  ELSIF NEW.stop_loss IS DISTINCT FROM OLD.stop_loss OR NEW.take_profit IS DISTINCT FROM OLD.take_profit THEN
    kind := 'trade_modified';
    description := format('Trade modified: #%s SL %s → %s, TP %s → %s', NEW.ticket, OLD.stop_loss, NEW.stop_loss,
                          OLD.take_profit, NEW.take_profit);
  ELSE
    RETURN NEW;
  END IF;
  INSERT INTO mt5_audit_log (time, tenant_id, account_id, event_type, event_category, action, event_description,
                             severity, metadata)
  VALUES (now(), NEW.tenant_id, NEW.account_id, kind, 'trade', lower(TG_OP), description, 'info',
          jsonb_build_object('order_id', NEW.order_id, 'ticket', NEW.ticket, 'symbol', NEW.symbol,
                             'signal_id', NEW.signal_id, 'status', NEW.status, 'volume', NEW.volume,
                             'open_price', NEW.open_price, 'close_price', NEW.close_price, 'profit', NEW.profit,
                             'stop_loss', NEW.stop_loss, 'take_profit', NEW.take_profit));
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS trade_order_audit ON mt5_trade_orders;
CREATE TRIGGER trade_order_audit AFTER INSERT OR UPDATE ON mt5_trade_orders
  FOR EACH ROW EXECUTE FUNCTION suho_trade_order_audit();
"""

# seed §8.3: one open event per account and type; a repeat returns the open one and changes nothing.
TRIGGER_RISK_EVENT = """
CREATE OR REPLACE FUNCTION trigger_risk_event(
  p_account_id uuid, p_event_type text, p_severity text, p_message text,
  p_threshold numeric, p_current numeric, p_action text
) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  v_tenant uuid;
  v_id uuid;
BEGIN
  SELECT tenant_id INTO v_tenant FROM mt5_user_accounts WHERE account_id = p_account_id;
  IF v_tenant IS NULL THEN
    RAISE EXCEPTION 'unknown account %', p_account_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  INSERT INTO mt5_risk_events (id, time, tenant_id, account_id, event_type, severity, message, threshold_value,
                               current_value, action_taken, status)
  VALUES (gen_random_uuid(), now(), v_tenant, p_account_id, p_event_type, p_severity, p_message, p_threshold,
          p_current, coalesce(p_action, ''), 'open')
  ON CONFLICT (tenant_id, account_id, event_type) WHERE status = 'open' DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id INTO v_id FROM mt5_risk_events
      WHERE tenant_id = v_tenant AND account_id = p_account_id AND event_type = p_event_type AND status = 'open';
    RETURN v_id;
  END IF;
  INSERT INTO mt5_audit_log (time, tenant_id, account_id, event_type, event_category, action, event_description,
                             severity, metadata)
  VALUES (now(), v_tenant, p_account_id, 'risk_' || p_event_type, 'risk', 'trigger', p_message, p_severity,
          jsonb_build_object('risk_event_id', v_id, 'threshold', p_threshold, 'current', p_current,
                             'action', p_action));
  RETURN v_id;
END $$;
"""


def revoke_audit_changes(apps, schema_editor):
    roles = ", ".join(f'"{role}"' for role in (settings.DB_SERVICE_USER, settings.DB_OPERATOR_USER))
    schema_editor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON mt5_audit_log FROM {roles}")
    schema_editor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON mt5_compliance_reports FROM {roles}")


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial"), ("trading", "0001_initial"), ("accounts", "0002_row_security")]
    operations = [
        EnableRowSecurity("mt5_risk_events"),
        EnableRowSecurity("mt5_compliance_reports"),
        EnableRowSecurity("mt5_user_consents"),
        migrations.RunSQL(AUDIT_HASH, migrations.RunSQL.noop),
        migrations.RunSQL(TRADE_ORDER_AUDIT, migrations.RunSQL.noop),
        migrations.RunSQL(TRIGGER_RISK_EVENT, "DROP FUNCTION IF EXISTS trigger_risk_event"),
        migrations.RunPython(revoke_audit_changes, migrations.RunPython.noop),
    ]
