"""The tick table has one secondary index, (tenant, symbol, account, time DESC): every index costs each tick an
insert, and the two it replaced were a seventh of PostgreSQL's CPU per tick (decision 0032). The reads it is for
still find their rows through it, with all three keys in the index condition: the latest quote of an account's
symbol (the quote cache's miss; the execution trigger's spread) and the seed's tenant + symbol read (§9.2)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone
from factories import make_account, make_tenant, make_user

from quotes.models import BrokerQuote
from quotes.selectors import quote_latest_rows
from suho.routers import OWNER, SERVICE
from suho.tenancy import tenant_context

ALL = pytest.mark.django_db(databases=["default", "owner", "operator"])
INDEX = "idx_quotes_symbol_acct_time"
INDEX_KEYS = '(tenant_id, symbol, account_id, "time" DESC)'


def _index_scans(plan: dict) -> list[dict]:
    found = [plan] if plan.get("Node Type", "").startswith(("Index", "Bitmap Index")) else []
    for child in plan.get("Plans", []):
        found += _index_scans(child)
    return found


def _plan(cursor, sql: str, params) -> dict:
    cursor.execute("SET LOCAL enable_seqscan = off")  # a few test rows: a sequential scan would be cheaper
    cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def _index_keys(cursor, index_name: str) -> str:
    cursor.execute(
        "SELECT pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relname = %s AND c.relkind IN ('i', 'I')",
        [index_name],
    )
    definition = cursor.fetchone()[0]
    return definition[definition.index(" USING btree ") + len(" USING btree ") :]


@pytest.fixture
def account():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    with tenant_context(tenant.pk):  # a tick now: its partition (TimescaleDB: chunk) is in every plan below
        BrokerQuote.objects.create(
            time=timezone.now(), tenant_id=tenant.pk, account=account, symbol="EURUSD", bid=Decimal("1.095"),
            ask=Decimal("1.0952"), spread=Decimal(20),
        )  # fmt: skip
    return account


@ALL
def test_the_tick_table_has_one_secondary_index():
    with connections[OWNER].cursor() as cursor:
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = 'mt5_broker_quotes'::regclass AND NOT x.indisprimary"
        )
        indexes = cursor.fetchall()
    assert [name for name, _ in indexes] == [INDEX], indexes
    assert indexes[0][1].endswith(INDEX_KEYS), indexes


@ALL
@pytest.mark.parametrize("read", ["latest quote of an account's symbol", "tenant + symbol window"])
def test_the_reads_find_their_ticks_through_the_index_on_every_key(account, read):
    since = timezone.now() - timedelta(minutes=5)
    if read == "tenant + symbol window":
        sql = "SELECT count(*) FROM mt5_broker_quotes WHERE symbol = %s AND time >= %s"
        params = ["EURUSD", since]
        keys = ("tenant_id", "symbol")
    else:
        sql, params = quote_latest_rows(account_id=account.pk, symbol="EURUSD", since=since)[:1].query.sql_with_params()
        keys = ("tenant_id", "symbol", "account_id")
    with transaction.atomic(using=SERVICE), tenant_context(account.tenant_id):
        with connections[SERVICE].cursor() as cursor:
            scans = _index_scans(_plan(cursor, sql, params))
        with connections[OWNER].cursor() as owner:
            used = {_index_keys(owner, scan["Index Name"]) for scan in scans}
    assert scans and used == {INDEX_KEYS}, used
    for scan in scans:
        assert all(key in scan["Index Cond"] for key in keys), scan["Index Cond"]
