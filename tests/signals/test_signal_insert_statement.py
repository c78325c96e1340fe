"""The intake writes a signal with `suho.sql.insert_statement` (one round trip with its audit and outbox rows):
the row it stores is the row the ORM's create stores, field for field, and a statement that returns no rows gives
an empty list among the others."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.db.models import Value
from django.db.models.functions import Upper
from django.forms.models import model_to_dict
from django.utils import timezone
from psycopg.types.json import Jsonb

from signals.models import TradingSignal
from suho.sql import _insert_compiled, insert_statement, statements_in_context
from suho.tenancy import tenant_context


def _fields(account, now) -> dict:
    return {
        "time": now, "tenant_id": account.tenant_id, "account": account, "client_signal_id": "", "source": "ml",
        "symbol": "EURUSD", "action": "BUY", "entry_price": Decimal("1.10012"), "stop_loss": Decimal("1.09"),
        "take_profit": None, "volume": Decimal("0.1000"), "valid_until": now + timedelta(minutes=5),
        "confidence_score": Decimal("0.8123"), "metadata": {"reference_source": "producer", "deviation_pips": 1.5},
        "broker_bid": Decimal("1.10010"), "broker_ask": Decimal("1.10012"), "deviation_pips": Decimal("0.40"),
    }  # fmt: skip


def test_the_statement_stores_what_create_stores(account):
    now = timezone.now()
    with tenant_context(account.tenant_id):
        created = TradingSignal.objects.create(**_fields(account, now))
        written = TradingSignal(**_fields(account, now))
        results = statements_in_context([insert_statement(written), ("SELECT 1", [])])
        stored = {s.signal_id: s for s in TradingSignal.objects.filter(signal_id__in=[created.pk, written.pk])}

    assert results == [[], [(1,)]]
    assert not written._state.adding and written._state.db == created._state.db
    ignore = ("signal_id", "updated_at")
    expected = {k: v for k, v in model_to_dict(stored[created.pk]).items() if k not in ignore}
    assert {k: v for k, v in model_to_dict(stored[written.pk]).items() if k not in ignore} == expected
    assert stored[written.pk].updated_at is not None  # auto_now applied, as a save would


def test_a_repeated_producer_id_fails_the_statement_and_writes_nothing_after_it(account):
    now = timezone.now()
    fields = {**_fields(account, now), "client_signal_id": f"dup-{uuid.uuid4().hex[:8]}"}
    with tenant_context(account.tenant_id):
        TradingSignal.objects.create(**fields)
    with pytest.raises(IntegrityError), tenant_context(account.tenant_id):
        statements_in_context([insert_statement(TradingSignal(**fields)), ("SELECT 1", [])])
    with tenant_context(account.tenant_id):
        assert TradingSignal.objects.filter(client_signal_id=fields["client_signal_id"]).count() == 1


def test_the_statement_compiled_once_is_djangos_own_for_the_row(account, monkeypatch):
    """The SQL is compiled once per model and only the values are prepared per call (no full compile of the row):
    both must be what Django's compiler makes for this very row."""
    import suho.sql

    def compiled_in_full(model, instance):
        raise AssertionError("the row was compiled in full")

    now = timezone.now()
    with tenant_context(account.tenant_id):
        signal = TradingSignal(**_fields(account, now))
        with monkeypatch.context() as patch:
            patch.setattr(suho.sql, "_insert_compiled", compiled_in_full)
            sql, params = insert_statement(signal)
        compiled_sql, compiled_params = _insert_compiled(TradingSignal, signal)

    assert sql == compiled_sql
    updated_at = [f.name for f in TradingSignal._meta.local_concrete_fields].index("updated_at")  # auto_now: per call
    assert compiled_params[updated_at] >= params[updated_at]
    del params[updated_at], compiled_params[updated_at]
    assert [_plain(p) for p in params] == [_plain(p) for p in compiled_params]


def _plain(param):
    return ("jsonb", param.obj) if isinstance(param, Jsonb) else param


def test_a_value_that_is_an_expression_is_compiled_with_the_row(account):
    """An expression is SQL, not a value: the row's statement is compiled in full, and it stores what create does."""
    fields = {**_fields(account, timezone.now()), "client_signal_id": Upper(Value("expr-id"))}
    with tenant_context(account.tenant_id):
        signal = TradingSignal(**fields)
        sql, params = insert_statement(signal)
        statements_in_context([(sql, params)])
        stored = TradingSignal.objects.get(pk=signal.pk)

    assert "UPPER(" in sql
    assert stored.client_signal_id == "EXPR-ID"
