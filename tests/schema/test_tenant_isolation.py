"""Tenant isolation as the service role: one tenant's context shows its rows only, and never writes another's."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.db import ProgrammingError, connections, models, transaction
from django.utils import timezone
from factories import (
    make_account,
    make_api_key,
    make_audit,
    make_balance,
    make_compliance_report,
    make_consent,
    make_ea_session,
    make_heartbeat,
    make_order,
    make_quote,
    make_risk_event,
    make_rollup,
    make_signal,
    make_tenant,
    make_trade_event,
    make_user,
)
from test_rls_catalog import TENANT_TABLES

from accounts.models import MT5Account
from signals.models import TradingSignal
from suho.tenancy import TENANT_SETTING, current_tenant, tenant_context

SERVICE = "default"


def populate(tenant) -> None:
    """One row or more in every tenant table, written as the service role under the tenant's own context."""
    user = make_user(tenant)
    account = make_account(tenant, user)
    session_key = make_api_key(account)
    make_ea_session(session_key)
    make_balance(account)
    make_rollup(account)
    make_heartbeat(account)
    make_quote(account)
    make_trade_event(account)
    signal = make_signal(account)
    make_order(account, signal=signal, open_price=Decimal("1.08510"))  # + execution, audit row
    make_audit(tenant)
    make_risk_event(account)
    make_compliance_report(tenant)
    make_consent(user)
    tables = service_tables()
    with tenant_context(tenant.id):  # tables added later get a row too, so they are never tested vacuously
        for model in apps.get_models():
            if model._meta.db_table in tables and not model.objects.using(SERVICE).exists():
                model.objects.using(SERVICE).create(**plausible_fields(model, tenant, account, user))


def plausible_fields(model, tenant, account, user) -> dict:
    """Values for the required fields of a tenant model no explicit factory covers yet."""
    related = {"accounts.tenant": tenant, "accounts.mt5account": account, "accounts.user": user}
    values = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.null or field.has_default() or getattr(field, "auto_now_add", False):
            continue
        if field.is_relation:
            values[field.name] = related[field.related_model._meta.label_lower]
        elif field.choices:
            values[field.name] = field.choices[0][0]
        elif isinstance(field, models.DateTimeField):
            values[field.name] = timezone.now()
        elif isinstance(field, models.DateField):
            values[field.name] = timezone.now().date()
        elif isinstance(field, models.DecimalField | models.IntegerField | models.FloatField):
            values[field.name] = 1
        elif isinstance(field, models.JSONField):
            values[field.name] = {}
        elif isinstance(field, models.UUIDField):
            values[field.name] = uuid.uuid4()
        elif isinstance(field, models.BinaryField):
            values[field.name] = b"x"
        elif field.unique:  # e.g. a token hash: two tenants' rows must not collide
            values[field.name] = uuid.uuid4().hex[: field.max_length]
        else:
            values[field.name] = "x"
    return values


@pytest.fixture
def tenants(db):
    a, b = make_tenant(using=SERVICE), make_tenant(using=SERVICE)
    populate(a)
    populate(b)
    return a, b


def service_tables() -> list[str]:
    """Every table with a tenant_id the service role can reach (partitions are not: see test_partition_upkeep)."""
    with connections[SERVICE].cursor() as cursor:
        cursor.execute(TENANT_TABLES, {"role": settings.DB_SERVICE_USER, "setting": TENANT_SETTING})
        return [table for table, _, _, _, _, reachable in cursor.fetchall() if reachable]


def tenant_ids_in(table: str) -> list[str]:
    with connections[SERVICE].cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}"')
        column = [col.name for col in cursor.description].index("tenant_id")
        return [str(row[column]) for row in cursor.fetchall()]


def test_a_tenant_context_shows_only_that_tenants_rows_in_every_table(tenants):
    a, b = tenants
    tables = service_tables()
    assert len(tables) >= 16
    for tenant in (a, b):
        with tenant_context(tenant.id):
            seen = {table: tenant_ids_in(table) for table in tables}
        empty = [table for table, ids in seen.items() if not ids]
        assert not empty, f"populate() writes no row in {empty}: add one so isolation is tested there"
        assert {table: set(ids) for table, ids in seen.items()} == {table: {str(tenant.id)} for table in tables}


def test_without_a_tenant_context_every_table_reads_empty(tenants):
    assert current_tenant() is None
    assert {table: tenant_ids_in(table) for table in service_tables()} == {table: [] for table in service_tables()}


def test_inserting_a_row_for_another_tenant_is_refused_in_every_table(tenants):
    a, b = tenants
    for table in service_tables():
        with tenant_context(b.id), connections[SERVICE].cursor() as cursor:
            cursor.execute(f'SELECT to_jsonb(t) FROM "{table}" AS t LIMIT 1')
            row_of_b = cursor.fetchone()[0]
        with tenant_context(a.id):
            with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic(using=SERVICE):
                with connections[SERVICE].cursor() as cursor:
                    cursor.execute(
                        f'INSERT INTO "{table}" SELECT * FROM jsonb_populate_record(NULL::"{table}", %s::jsonb)',
                        [row_of_b],
                    )
            assert set(tenant_ids_in(table)) == {str(a.id)}, f"{table}: nothing of B became visible"


def test_an_orm_write_for_another_tenant_is_refused(tenants):
    a, b = tenants
    with tenant_context(b.id):
        account_of_b = MT5Account.objects.get()
    with tenant_context(a.id), pytest.raises(ProgrammingError, match="row-level security"):
        with transaction.atomic():
            TradingSignal.objects.create(
                tenant_id=b.id, account=account_of_b, time=timezone.now(), symbol="EURUSD", action="BUY",
                volume=Decimal("0.1"), valid_until=timezone.now(),
            )  # fmt: skip


def test_a_nested_tenant_context_puts_the_outer_one_back(tenants):
    a, b = tenants
    with tenant_context(a.id):
        with tenant_context(b.id):
            assert current_tenant() == b.id
        assert current_tenant() == a.id
        assert set(tenant_ids_in("mt5_trading_signals")) == {str(a.id)}
    assert current_tenant() is None


@pytest.mark.django_db(transaction=True, databases=[SERVICE])
def test_a_connection_reused_after_a_tenants_transaction_carries_no_context():
    tenant = make_tenant(using=SERVICE)
    connection = connections[SERVICE]
    with tenant_context(tenant.id):
        assert current_tenant() == tenant.id
        raw = connection.connection
    assert connection.connection is raw, "the same database session serves the next piece of work"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [TENANT_SETTING])
        assert cursor.fetchone()[0] == ""
    assert current_tenant() is None
    assert tenant_ids_in("mt5_user_accounts") == []
    with connection.cursor() as cursor:  # clean up: transactional tests flush only the owner's alias
        cursor.execute("DELETE FROM suho_tenants WHERE id = %s", [tenant.id])
