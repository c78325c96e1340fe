"""Seed §8.2 example 2: trade orders audit themselves — opened, modified and closed — through a trigger."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone
from factories import make_account, make_order, make_tenant, make_user

from compliance.models import AuditLog
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def update_order(account, assignments: str, params: list) -> None:
    with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(f"UPDATE mt5_trade_orders SET {assignments} WHERE account_id = %s", [*params, account.pk])


def audit_trail(account) -> list[tuple]:
    with tenant_context(account.tenant_id):
        return list(
            AuditLog.objects.filter(account_id=account.pk)
            .order_by("chain_seq")
            .values_list("event_type", "event_category", "action", "metadata__ticket")
        )


def test_opening_modifying_and_closing_an_order_each_write_one_audit_row(account):
    make_order(account, ticket=4242, stop_loss=Decimal("1.08300"))
    update_order(account, "stop_loss = %s", [Decimal("1.08400")])
    update_order(account, "status = 'closed', close_price = %s, profit = %s, close_time = %s",
                 [Decimal("1.08700"), Decimal("20.00"), timezone.now()])  # fmt: skip

    assert audit_trail(account) == [
        ("trade_opened", "trade", "insert", 4242),
        ("trade_modified", "trade", "update", 4242),
        ("trade_closed", "trade", "update", 4242),
    ]


def test_an_update_that_changes_nothing_a_trader_cares_about_writes_no_audit_row(account):
    make_order(account)
    update_order(account, "comment = %s", ["note"])
    assert [event for event, *_ in audit_trail(account)] == ["trade_opened"]


def test_the_close_audit_row_carries_price_and_profit(account):
    make_order(account, ticket=7)
    update_order(account, "status = 'closed', close_price = %s, profit = %s, close_time = now()",
                 [Decimal("1.09000"), Decimal("-12.50")])  # fmt: skip
    with tenant_context(account.tenant_id):
        closed = AuditLog.objects.get(account_id=account.pk, event_type="trade_closed")
    assert (closed.metadata["close_price"], closed.metadata["profit"]) == (1.09, -12.5)
    assert closed.tenant_id == account.tenant_id and closed.chain_seq == 2
