"""Each audit chain's last (chain_seq, row_hash) kept in a row of its own, so that appending to a chain reads one row.

The trigger used to find a chain's last row in mt5_audit_log itself (`ORDER BY chain_seq DESC LIMIT 1`): every
audit insert planned and probed every partition (TimescaleDB: every chunk) of the 7-year log, an index probe each
where the tenant's row policy gave the planner an indexable condition, a scan each for the platform's chain, so an
EA connect, a signal or a command cost more the longer the platform ran (decision 0004).

`suho_audit_chain_heads` belongs to the owner and is granted to no one: the trigger function runs as its owner
(SECURITY DEFINER, fixed search_path) and is the only writer, under the chain's advisory lock as before. The heads
are filled from the log here, one index probe per chain (idx_audit_log_chain: tenant, chain_seq) rather than a sort
of the whole log, because the log is locked meanwhile: it is read without its forced row policy, and the ALTER TABLE
that lifts it for this transaction only (as the partition upkeep does; DDL is transactional, no other session sees
it unforced) holds its ACCESS EXCLUSIVE lock until the migration commits. That lock is also what keeps the heads
right: no audit row can be written between the fill and the new trigger.
"""

from django.conf import settings
from django.db import migrations

HEADS_TABLE = """
CREATE TABLE suho_audit_chain_heads (
    chain text PRIMARY KEY,  -- the tenant id as text, or 'platform' for rows without a tenant
    last_seq bigint NOT NULL,
    last_hash text NOT NULL
);
REVOKE ALL ON suho_audit_chain_heads FROM PUBLIC;
"""

FILL = """
ALTER TABLE mt5_audit_log NO FORCE ROW LEVEL SECURITY;
INSERT INTO suho_audit_chain_heads (chain, last_seq, last_hash)
SELECT t.id::text, last.chain_seq, last.row_hash
  FROM suho_tenants t
 CROSS JOIN LATERAL (SELECT chain_seq, row_hash FROM mt5_audit_log l
                      WHERE l.tenant_id = t.id AND l.chain_seq IS NOT NULL
                      ORDER BY l.chain_seq DESC LIMIT 1) AS last
 UNION ALL
(SELECT 'platform', chain_seq, row_hash FROM mt5_audit_log
  WHERE tenant_id IS NULL AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1);
ALTER TABLE mt5_audit_log FORCE ROW LEVEL SECURITY;
"""

CHAIN_FROM_HEADS = """
CREATE OR REPLACE FUNCTION suho_audit_chain() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  chain_key text := coalesce(NEW.tenant_id::text, 'platform');
  last_hash text;
  last_seq bigint;
BEGIN
  -- One writer per tenant chain at a time; released at commit.
  PERFORM pg_advisory_xact_lock(hashtextextended('suho_audit:' || chain_key, 0));
  SELECT h.last_hash, h.last_seq INTO last_hash, last_seq FROM suho_audit_chain_heads h WHERE h.chain = chain_key;
  NEW.chain_seq := coalesce(last_seq, 0) + 1;
  NEW.prev_hash := coalesce(last_hash, '');
  NEW.time := coalesce(NEW.time, now());
  NEW.metadata := coalesce(NEW.metadata, '{}'::jsonb);
  NEW.row_hash := suho_audit_hash(NEW.prev_hash, NEW);
  -- In the inserting statement's transaction: if the row is not stored, neither is the new head.
  INSERT INTO suho_audit_chain_heads AS h (chain, last_seq, last_hash) VALUES (chain_key, NEW.chain_seq, NEW.row_hash)
    ON CONFLICT (chain) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash;
  RETURN NEW;
END $$;
"""

# The function as compliance 0002 made it, for a migration back.
LOG_SCAN = """
CREATE OR REPLACE FUNCTION suho_audit_chain() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  last_hash text;
  last_seq bigint;
BEGIN
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
ALTER FUNCTION suho_audit_chain() RESET ALL;
DROP TABLE suho_audit_chain_heads;
"""


def heads_private(apps, schema_editor):
    """The schema's default privileges grant new tables to the application roles: not this one."""
    roles = ", ".join(f'"{role}"' for role in (settings.DB_SERVICE_USER, settings.DB_OPERATOR_USER))
    schema_editor.execute(f"REVOKE ALL ON suho_audit_chain_heads FROM {roles}")


class Migration(migrations.Migration):
    dependencies = [("compliance", "0004_time_series_key_with_tenant")]
    operations = [
        migrations.RunSQL(HEADS_TABLE + FILL + CHAIN_FROM_HEADS, LOG_SCAN),
        migrations.RunPython(heads_private, migrations.RunPython.noop),
    ]
