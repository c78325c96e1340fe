"""Seed §8.3 `trigger_risk_event(...)`: one open event per account and type; a repeat returns it unchanged."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connections, transaction
from factories import make_account, make_tenant, make_user

from compliance.models import AuditLog, RiskEvent
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db

SEED_CALL = """
SELECT trigger_risk_event(
    %s,
    'daily_loss_limit',
    'critical',
    'Daily loss limit exceeded: -$523.45',
    -500,  -- threshold
    -523.45,  -- current
    'disable_trading'
)
"""


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def trigger(account) -> str:
    with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(SEED_CALL, [account.pk])
        return cursor.fetchone()[0]


def test_the_seeds_call_opens_a_risk_event_and_audits_it(account):
    event_id = trigger(account)
    with tenant_context(account.tenant_id):
        event = RiskEvent.objects.get()
        audit = AuditLog.objects.get(event_type="risk_daily_loss_limit")
    assert event.id == event_id
    assert (event.tenant_id, event.account_id, event.status) == (account.tenant_id, account.pk, "open")
    assert (event.severity, event.action_taken) == ("critical", "disable_trading")
    assert (event.threshold_value, event.current_value) == (Decimal(-500), Decimal("-523.45"))
    assert audit.metadata["risk_event_id"] == str(event_id)


def test_a_second_call_returns_the_open_event_and_adds_nothing(account):
    first, second = trigger(account), trigger(account)
    assert first == second
    with tenant_context(account.tenant_id):
        assert RiskEvent.objects.count() == 1
        assert AuditLog.objects.filter(event_category="risk").count() == 1


def test_a_resolved_event_lets_the_next_breach_open_a_new_one(account):
    first = trigger(account)
    with tenant_context(account.tenant_id):
        RiskEvent.objects.filter(pk=first).update(status="resolved")
    assert trigger(account) != first


def test_an_account_outside_the_callers_tenant_is_unknown(account):
    other = make_tenant()
    with tenant_context(other.id), connections["default"].cursor() as cursor:
        with pytest.raises(IntegrityError, match="unknown account"), transaction.atomic():
            cursor.execute(SEED_CALL, [account.pk])
