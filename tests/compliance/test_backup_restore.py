"""A dump of a populated database restores into a fresh one whose audit chains still verify (seed §10.3)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from factories import make_account, make_audit, make_order, make_tenant, make_user

from compliance.audit import CHAIN_CHECK, audit_verify
from compliance.gdpr import consent_record
from suho.dbsetup import database_drop, database_url

TABLES = ("mt5_audit_log", "mt5_trade_orders", "mt5_user_accounts", "mt5_user_consents", "suho_tenants")


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


@pytest.fixture
def restored_name():
    name = f"suho_restore_{uuid.uuid4().hex[:10]}"
    yield name
    database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=name)


def test_a_dump_restores_into_a_fresh_database_with_verifiable_audit_chains(committed, tmp_path, restored_name):
    tenants = [make_tenant() for _ in range(2)]
    for tenant in tenants:
        user = make_user(tenant)
        account = make_account(tenant, user)
        for n in range(3):
            make_order(account, status="closed", close_price=Decimal("1.08"), profit=Decimal(n), close_time=None)
            make_audit(tenant, event_description=f"event {n}")
        consent_record(user=user, purpose="terms", version="1", ip_address="192.0.2.1")
    assert all(report.ok for report in audit_verify())
    source = settings.DATABASES["owner"]["NAME"]
    dump = tmp_path / "suho.dump"

    call_command("backup_db", "--output", str(dump), "--database", source)
    call_command("restore_db", "--input", str(dump), "--database", restored_name)

    source_url = database_url(settings.DATABASE_ADMIN_URL, source)
    restored_url = database_url(settings.DATABASE_ADMIN_URL, restored_name)
    assert counts(restored_url) == counts(source_url)
    assert counts(restored_url)["mt5_audit_log"] >= 2 * (3 + 3 + 1)
    with psycopg.connect(restored_url) as conn:
        for tenant in tenants:
            assert conn.execute(CHAIN_CHECK, {"tenant": str(tenant.id)}).fetchone() is None  # no broken row
        triggers = {row[0] for row in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'mt5_audit_log'::regclass")}  # fmt: skip
        assert {"audit_chain", "audit_append_only"} <= triggers
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'mt5_user_accounts'").fetchone()[0]
        assert owner == settings.DB_OWNER_USER
