"""Appending to an audit chain reads the chain's head, one row, not the 7-year log (compliance 0005, decision 0004):
the head always names the chain's last row, moves only with a row that is stored, and no application role can
read or change it."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from factories import make_audit, make_tenant

from compliance.models import AuditLog
from suho.routers import operator_path
from suho.tenancy import tenant_context

# Scans of the audit log's parent, partitions or chunks in the current transaction (pg_stat_xact_*: this backend's).
LOG_SCANS_THIS_TRANSACTION = """
SELECT coalesce(sum(coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0)), 0)
FROM pg_stat_xact_user_tables s
WHERE s.relid = 'mt5_audit_log'::regclass
   OR s.relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'mt5_audit_log'::regclass)
"""


def heads() -> dict[str, tuple[int, str]]:
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT chain, last_seq, last_hash FROM suho_audit_chain_heads")
        return {chain: (seq, digest) for chain, seq, digest in cursor.fetchall()}


def last_rows() -> dict[str, tuple[int, str]]:
    """Each chain's last row, read from the log itself by the owner (row security lifted for the transaction)."""
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("ALTER TABLE mt5_audit_log NO FORCE ROW LEVEL SECURITY")
        cursor.execute(
            "SELECT DISTINCT ON (1) coalesce(tenant_id::text, 'platform'), chain_seq, row_hash FROM mt5_audit_log"
            " ORDER BY 1, chain_seq DESC"
        )
        found = {chain: (seq, digest) for chain, seq, digest in cursor.fetchall()}
        transaction.set_rollback(True, using="owner")
    return found


@pytest.mark.django_db(databases=["default", "owner"])
def test_appending_to_a_chain_scans_no_part_of_the_log():
    tenant = make_tenant()
    for n in range(3):
        make_audit(tenant, event_description=f"earlier {n}")
    with tenant_context(tenant.id), connections["default"].cursor() as cursor:
        cursor.execute(LOG_SCANS_THIS_TRANSACTION)
        before = cursor.fetchone()[0]
        row = make_audit(tenant, event_description="appended")
        cursor.execute(LOG_SCANS_THIS_TRANSACTION)
        after = cursor.fetchone()[0]
    assert after == before  # the trigger before compliance 0005 scanned every partition (or chunk) here
    with tenant_context(tenant.id):
        assert AuditLog.objects.get(pk=row.pk).chain_seq == 4


def test_each_chains_head_is_its_last_row_and_the_chains_stay_apart(committed):
    first, second = make_tenant(), make_tenant()
    for n in range(4):
        make_audit(first, event_description=f"first {n}")
        if n % 2:
            make_audit(second, event_description=f"second {n}")
    chains = (str(first.id), str(second.id))
    stored, kept = last_rows(), heads()
    assert [kept[chain] for chain in chains] == [stored[chain] for chain in chains]
    assert stored[str(first.id)][0] == 4 and stored[str(second.id)][0] == 2
    with tenant_context(second.id):
        seqs = list(AuditLog.objects.filter(tenant=second).order_by("chain_seq").values_list("chain_seq", flat=True))
    assert seqs == [1, 2]


def test_a_row_refused_after_the_trigger_leaves_the_head_where_it_was(committed):
    """Row security checks the row after the BEFORE trigger has moved the head: the refusal undoes both, and the
    chain goes on from its last stored row."""
    mine, other = make_tenant(), make_tenant()
    make_audit(other, event_description="stored")
    before = heads()[str(other.id)]
    with pytest.raises(DatabaseError, match="row-level security"), tenant_context(mine.id):
        AuditLog.objects.create(tenant=other, time=timezone.now(), event_type="account_created",
                                event_category="account", action="create", event_description="refused")  # fmt: skip
    assert heads()[str(other.id)] == before
    assert str(mine.id) not in heads()
    make_audit(other, event_description="next")
    assert heads()[str(other.id)] == last_rows()[str(other.id)]
    assert heads()[str(other.id)][0] == 2


@pytest.mark.django_db(databases=["default", "operator"])
@pytest.mark.parametrize("alias", ["default", "operator"])
def test_no_application_role_can_read_or_change_the_heads(alias):
    role = settings.DATABASES[alias]["USER"]
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, 'suho_audit_chain_heads', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')",
            [role],
        )
        assert cursor.fetchone()[0] is False
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using=alias):
            cursor.execute("SELECT * FROM suho_audit_chain_heads")


def test_the_migrations_fill_gives_each_chain_the_head_the_trigger_keeps(committed):
    """compliance 0005 fills the heads of a database that already has audit rows: one index probe per chain, the
    platform's (no tenant) included; what it finds is what the trigger has kept since."""
    fill = import_module("compliance.migrations.0005_audit_chain_heads").FILL
    first, second = make_tenant(), make_tenant()
    for n in range(3):
        make_audit(first, event_description=f"first {n}")
    make_audit(second, event_description="second")
    with operator_path():
        AuditLog.objects.create(tenant=None, time=timezone.now(), event_type="platform_event",
                                event_category="system", action="check", event_description="no tenant")  # fmt: skip
    chains = [str(first.id), str(second.id), "platform"]
    kept = heads()
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("DELETE FROM suho_audit_chain_heads")
        cursor.execute(fill)
        cursor.execute("SELECT chain, last_seq, last_hash FROM suho_audit_chain_heads")
        filled = {chain: (seq, digest) for chain, seq, digest in cursor.fetchall()}
        transaction.set_rollback(True, using="owner")
    assert [filled[chain] for chain in chains] == [kept[chain] for chain in chains]
    assert filled[str(first.id)][0] == 3
