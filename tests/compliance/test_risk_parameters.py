"""`account_risk_parameters_update`: audited old → new, version bumped, pushed to the EA; bad input changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from factories import make_account, make_tenant, make_user

from accounts.models import MT5Account
from compliance.models import AuditLog
from compliance.services import RISK_PARAMETER_UNKNOWN, account_risk_parameters_update
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def audit_rows(account):
    with tenant_context(account.tenant_id):
        return list(AuditLog.objects.filter(event_type="risk_parameters_changed").values_list("user_id", "metadata"))


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
