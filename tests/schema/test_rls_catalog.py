"""Row-level security, read from pg_catalog: no tenant table the service role can reach is left unguarded."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections

from suho.tenancy import TENANT_SETTING
from suho.timeseries import timescale_enabled

TENANT_TABLES = """
SELECT c.oid::regclass::text,
       c.relispartition,
       c.relrowsecurity,
       c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_policy p
               WHERE p.polrelid = c.oid AND p.polcmd = '*'
                 AND (p.polroles = '{0}' OR (SELECT oid FROM pg_roles WHERE rolname = %(role)s) = ANY (p.polroles))
                 AND strpos(pg_get_expr(p.polqual, p.polrelid), %(setting)s) > 0
                 AND strpos(pg_get_expr(coalesce(p.polwithcheck, p.polqual), p.polrelid), %(setting)s) > 0),
       has_table_privilege(%(role)s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
         OR has_any_column_privilege(%(role)s, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
  AND c.relkind IN ('r', 'p')  -- plain tables, partitions, and partitioned parents (pg_partitioned_table)
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1
"""


def unprotected_tenant_tables(cursor, role: str = settings.DB_SERVICE_USER) -> dict[str, list[str]]:
    """Tables with a `tenant_id` that `role` can reach, or that are partitions, and what each lacks.

    Partitions are held to the rule even where the role has no privilege on them: defence in depth.
    """
    cursor.execute(TENANT_TABLES, {"role": role, "setting": TENANT_SETTING})
    lacking = {}
    for table, is_partition, enabled, forced, policy, reachable in cursor.fetchall():
        if not (reachable or is_partition):
            continue
        missing = [name for name, ok in (("RLS", enabled), ("FORCE", forced), ("policy", policy)) if not ok]
        if missing:
            lacking[table] = missing
    return lacking


def tenant_tables(cursor) -> list[str]:
    cursor.execute(TENANT_TABLES, {"role": settings.DB_SERVICE_USER, "setting": TENANT_SETTING})
    return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(databases=["owner"])
def test_every_tenant_table_has_row_security_enabled_forced_and_a_tenant_policy():
    with connections["owner"].cursor() as cursor:
        tables = tenant_tables(cursor)
        assert "mt5_trade_orders" in tables and "mt5_user_accounts" in tables  # the query sees the schema
        assert unprotected_tenant_tables(cursor) == {}


@pytest.mark.django_db(databases=["owner"])
def test_partitions_and_their_parents_are_checked_too():
    with connections["owner"].cursor() as cursor:
        tables = tenant_tables(cursor)
    assert "mt5_ea_heartbeat" in tables
    if timescale_enabled(connections["owner"]):
        pytest.skip("TimescaleDB path: chunks are checked by test_timescaledb_path (no privilege on any)")
    assert "mt5_ea_heartbeat_default" in tables
    assert any(table.startswith("mt5_audit_log_p") for table in tables)


@pytest.mark.django_db(databases=["owner"])
def test_a_tenant_table_without_row_security_makes_the_check_fail():
    with connections["owner"].cursor() as cursor:
        cursor.execute("CREATE TABLE probe_unguarded (id bigint PRIMARY KEY, tenant_id uuid NOT NULL)")
        cursor.execute(f'GRANT SELECT, INSERT ON probe_unguarded TO "{settings.DB_SERVICE_USER}"')
        assert unprotected_tenant_tables(cursor) == {"probe_unguarded": ["RLS", "FORCE", "policy"]}

        cursor.execute("ALTER TABLE probe_unguarded ENABLE ROW LEVEL SECURITY")
        assert unprotected_tenant_tables(cursor) == {"probe_unguarded": ["FORCE", "policy"]}

        cursor.execute("ALTER TABLE probe_unguarded FORCE ROW LEVEL SECURITY")
        cursor.execute("CREATE POLICY everything ON probe_unguarded USING (true)")
        assert unprotected_tenant_tables(cursor) == {"probe_unguarded": ["policy"]}, "a policy not on the tenant"

        cursor.execute("DROP POLICY everything ON probe_unguarded")
        cursor.execute(
            f"CREATE POLICY tenant_isolation ON probe_unguarded"
            f" USING (tenant_id = nullif(current_setting('{TENANT_SETTING}', true), '')::uuid)"
            f" WITH CHECK (tenant_id = nullif(current_setting('{TENANT_SETTING}', true), '')::uuid)"
        )
        assert unprotected_tenant_tables(cursor) == {}


@pytest.mark.django_db(databases=["owner"])
def test_a_partition_created_without_protection_makes_the_check_fail():
    with connections["owner"].cursor() as cursor:
        if timescale_enabled(connections["owner"]):
            pytest.skip("no native partitions on the TimescaleDB path")
        cursor.execute(
            "CREATE TABLE mt5_ea_heartbeat_probe PARTITION OF mt5_ea_heartbeat"
            " FOR VALUES FROM ('1990-01-01') TO ('1990-01-02')"
        )
        assert unprotected_tenant_tables(cursor) == {"mt5_ea_heartbeat_probe": ["RLS", "FORCE", "policy"]}


@pytest.mark.django_db(databases=["owner"])
def test_the_service_role_owns_nothing_and_cannot_bypass_row_security():
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT rolbypassrls, rolsuper, (SELECT count(*) FROM pg_class WHERE relowner = r.oid)"
            " FROM pg_roles r WHERE rolname = %s",
            [settings.DB_SERVICE_USER],
        )
        assert cursor.fetchone() == (False, False, 0)


# Functions that run with their owner's rights, and why each may: every other function of ours (the EA session's
# claim and disconnect, trading migration 0008, among them) runs as its caller, under its tenant's row policies.
OWNER_RIGHTS_FUNCTIONS = {
    "suho_audit_chain": "the audit trigger: moves the chain's head, a table no application role may touch",
}


@pytest.mark.django_db(databases=["owner"])
def test_only_the_audit_trigger_runs_with_its_owners_rights():
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.prosecdef FROM pg_proc p"
            " WHERE p.pronamespace = 'public'::regnamespace"
            "   AND NOT EXISTS (SELECT 1 FROM pg_depend d"  # an extension's own (TimescaleDB's time_bucket)
            "                   WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
        )
        functions = dict(cursor.fetchall())
    assert {
        "suho_ea_session_claim",
        "suho_ea_disconnected",
        "suho_audit_chain",
        "trigger_risk_event",
    } <= functions.keys()
    assert {name for name, definer in functions.items() if definer} == OWNER_RIGHTS_FUNCTIONS.keys()
