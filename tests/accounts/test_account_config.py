"""`account_config_update`, the one write behind the risk parameters and the EA settings: audited old → new, version
bumped, pushed to the EA after commit; bad input changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from factories import make_account, make_tenant, make_user

from accounts.models import MT5Account
from accounts.services import (
    EA_SETTING_UNKNOWN,
    RISK_PARAMETER_UNKNOWN,
    account_config_update,
    account_ea_settings_update,
    account_risk_parameters_update,
)
from compliance.models import AuditLog
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def audit_rows(account, event_type="risk_parameters_changed"):
    with tenant_context(account.tenant_id):
        return list(AuditLog.objects.filter(event_type=event_type).values_list("user_id", "metadata"))


def test_a_change_is_audited_with_old_and_new_values_and_bumps_the_version(account, django_capture_on_commit_callbacks):
    user = make_user(account.tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        updated = account_risk_parameters_update(
            account=account, changes={"max_daily_loss": Decimal("250.00"), "min_margin_level": Decimal(150)},
            actor=user,
        )  # fmt: skip
    assert (updated.max_daily_loss, updated.config_version) == (Decimal("250.00"), account.config_version + 1)
    [(user_id, metadata)] = audit_rows(account)
    assert user_id == user.pk
    assert metadata["changes"] == {"max_daily_loss": {"old": "500.00", "new": "250.00"}}
    assert metadata["actor"] == user.username
    assert len(callbacks) == 2  # risk_params and settings published after commit


def test_an_unknown_field_is_refused_and_nothing_changes(account):
    with pytest.raises(ValueError, match=RISK_PARAMETER_UNKNOWN.format(names="account_number, broker")):
        account_risk_parameters_update(account=account, changes={"broker": "x", "account_number": 1}, actor="ops")
    with tenant_context(account.tenant_id):
        fresh = MT5Account.objects.get(pk=account.pk)
    assert (fresh.broker, fresh.config_version) == (account.broker, account.config_version)
    assert audit_rows(account) == []


def test_ea_settings_and_risk_parameters_share_one_version_and_are_audited_alike(
    account, django_capture_on_commit_callbacks
):
    """Both go through `account_config_update`: one config_version counter, the same audit shape (actor included),
    both halves of the configuration pushed after commit."""
    trader = make_user(account.tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        account_ea_settings_update(account=account, changes={"magic_number": 4242}, by=trader)
        updated = account_risk_parameters_update(account=account, changes={"trading_enabled": False}, actor="ops")
    assert (updated.magic_number, updated.trading_enabled) == (4242, False)
    assert updated.config_version == account.config_version + 2
    [(user_id, metadata)] = audit_rows(account, "ea_settings_changed")
    assert (user_id, metadata["actor"], metadata["config_version"]) == (
        trader.pk,
        trader.username,
        account.config_version + 1,
    )
    assert metadata["changes"] == {"magic_number": {"old": account.magic_number, "new": 4242}}
    assert len(callbacks) == 4  # risk_params and settings, after each of the two changes


def test_a_field_of_the_other_section_is_refused_and_nothing_changes(account):
    with pytest.raises(ValueError, match=EA_SETTING_UNKNOWN.format(names="trading_enabled")):
        account_config_update(account=account, section="ea_settings", changes={"trading_enabled": False}, actor="ops")
    with tenant_context(account.tenant_id):
        fresh = MT5Account.objects.get(pk=account.pk)
    assert (fresh.trading_enabled, fresh.config_version) == (True, account.config_version)
    assert audit_rows(account, "ea_settings_changed") == []
