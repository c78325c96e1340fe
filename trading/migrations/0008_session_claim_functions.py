"""An EA session's claim and disconnect as PL/pgSQL functions, so PostgreSQL plans them once per connection
(decision 0030).

Sent as SQL text, each statement was planned again on every call: planning the claim (a CTE over four tables, each
with its row policy) took 0.6 ms of the database's CPU, more than running it, and a reconnect storm claims and
disconnects every EA. PL/pgSQL keeps each statement's plan for the connection's life. The statements are the ones
trading/connection.py sent before (decision 0017 says why each step is in this order); the functions run as their
caller (SECURITY INVOKER), under the caller's tenant setting and row policies, so they can do no more than the
statements could.
"""

from django.db import migrations

# The account row first (FOR NO KEY UPDATE: a session's foreign-key check must pass), then bump the epoch and mark
# the account online, then end the previous session, then audit. The audit rows are made from `replaced`'s row
# count, so the audit chain's lock always comes after the session row's, as in every other writer (api_key_revoke
# ends sessions before it audits). No row: the session may not go on (ended, its key revoked, its account or tenant
# disabled), and nothing changed.
CLAIM = """
CREATE OR REPLACE FUNCTION suho_ea_session_claim(
    p_account_id uuid, p_session_id uuid, p_node text, p_now timestamptz, p_replaced text, p_connected text,
    p_connected_metadata jsonb
) RETURNS TABLE (epoch bigint, previous_session_id uuid, previous_node text)
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
RETURN QUERY
WITH account AS (
    SELECT a.account_id, a.tenant_id, a.live_session_epoch, a.live_session_id, a.live_session_node
      FROM mt5_user_accounts a
     WHERE a.account_id = p_account_id AND a.is_active
       AND EXISTS (SELECT 1
                     FROM mt5_ea_sessions s
                     JOIN mt5_api_keys k ON k.id = s.api_key_id
                     JOIN suho_tenants t ON t.id = s.tenant_id
                    WHERE s.session_id = p_session_id AND s.account_id = a.account_id AND s.ended_at IS NULL
                      AND k.revoked_at IS NULL AND t.is_active)
       FOR NO KEY UPDATE OF a
), claimed AS (
    UPDATE mt5_user_accounts a
       SET live_session_epoch = account.live_session_epoch + 1, live_session_id = p_session_id,
           live_session_node = p_node, connection_status = 'online', last_connected_at = p_now,
           last_heartbeat_at = coalesce(a.last_heartbeat_at, p_now)
      FROM account
     WHERE a.account_id = account.account_id
 RETURNING a.tenant_id, a.live_session_epoch AS epoch, account.live_session_id AS previous_session_id,
           account.live_session_node AS previous_node
), replaced AS (
    UPDATE mt5_ea_sessions s SET ended_at = p_now, end_reason = p_replaced
      FROM claimed
     WHERE s.session_id = claimed.previous_session_id AND s.session_id <> p_session_id AND s.ended_at IS NULL
 RETURNING s.session_id
), audited AS (
    INSERT INTO mt5_audit_log (time, tenant_id, account_id, event_type, event_category, action, event_description,
                               severity, metadata, prev_hash, row_hash)
    SELECT p_now, claimed.tenant_id, p_account_id, v.event_type, 'connection', v.action, v.description, 'info',
           v.metadata, '', ''
      FROM claimed
     CROSS JOIN (SELECT count(*) FROM replaced) AS after_replaced
     CROSS JOIN LATERAL (VALUES
        (1, claimed.previous_session_id IS NOT NULL AND claimed.previous_session_id <> p_session_id,
         'ea_session_replaced', 'replace',
         'EA session ' || claimed.previous_session_id || ' replaced by ' || p_session_id,
         jsonb_build_object('session_id', p_session_id, 'previous_session_id', claimed.previous_session_id,
                            'node', p_node, 'previous_node', claimed.previous_node, 'epoch', claimed.epoch)),
        (2, true, 'ea_connected', 'connect', p_connected, p_connected_metadata)
     ) AS v(n, wanted, event_type, action, description, metadata)
     WHERE v.wanted
     ORDER BY v.n
)
SELECT claimed.epoch, claimed.previous_session_id, claimed.previous_node::text FROM claimed;
END $$;
"""

# The account row first (offline only if `p_epoch` still holds it, or with no epoch: only then is the row updated,
# so locked, and a replaced session's disconnect waits for no claim; an account the tenant cannot see changes
# nothing and is not audited), then the audit row, whose chain lock is held only until the caller's commit.
DISCONNECTED = """
CREATE OR REPLACE FUNCTION suho_ea_disconnected(
    p_tenant_id uuid, p_account_id uuid, p_epoch bigint, p_now timestamptz, p_description text, p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
WITH account AS (
    SELECT account_id FROM mt5_user_accounts WHERE account_id = p_account_id
), offline AS (
    UPDATE mt5_user_accounts a SET connection_status = 'offline'
      FROM account
     WHERE a.account_id = account.account_id
       AND (p_epoch IS NULL OR a.live_session_epoch = p_epoch)
 RETURNING a.account_id
)
INSERT INTO mt5_audit_log (time, tenant_id, account_id, event_type, event_category, action, event_description,
                           severity, metadata, prev_hash, row_hash)
SELECT p_now, p_tenant_id, account.account_id, 'ea_disconnected', 'connection', 'disconnect', p_description,
       'info', p_metadata, '', ''
  FROM account
 CROSS JOIN (SELECT count(*) FROM offline) AS after_offline;
END $$;
"""

DROP = """
DROP FUNCTION IF EXISTS suho_ea_session_claim(uuid, uuid, text, timestamptz, text, text, jsonb);
DROP FUNCTION IF EXISTS suho_ea_disconnected(uuid, uuid, bigint, timestamptz, text, jsonb);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_live_session_monotonic"),
        ("compliance", "0005_audit_chain_heads"),
        ("trading", "0007_account_daily_pnl"),
    ]

    operations = [migrations.RunSQL(CLAIM + DISCONNECTED, DROP)]
