"""The admin (operator path): staff see every tenant's signals, cancel pending ones (audited with their name;
others are left as they are), and revoke producer credentials."""

from __future__ import annotations

import pytest
from django.test import Client
from factories import make_signal

from accounts.models import User
from compliance.models import AuditLog
from signals.models import TradingSignal
from signals.services import ml_engine_key_create, ml_engine_key_verify
from suho.routers import operator_path
from tests.accounts.helpers import account_make, tenant_make
from tests.factories import staff_login

SIGNALS_URL = "/admin/signals/tradingsignal/"


@pytest.fixture
def admin_client(committed) -> Client:
    with operator_path():
        staff = User.objects.create_superuser(username="ops1", email="ops1@example.com", password="x" * 12)
    client = Client()
    staff_login(client, staff)
    return client


def test_staff_cancel_pending_signals_of_any_tenant_and_others_are_left_alone(admin_client, account):
    other = account_make(tenant_make())
    pending, theirs = make_signal(account), make_signal(other)
    executed = make_signal(account, status="executed")
    page = admin_client.get(SIGNALS_URL).content.decode()
    assert str(account) in page and str(other) in page
    selected = [str(s.pk) for s in (pending, theirs, executed)]
    response = admin_client.post(SIGNALS_URL, {"action": "cancel", "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    with operator_path():
        statuses = {s.pk: s.status for s in TradingSignal.objects.all()}
        audits = list(AuditLog.objects.filter(event_type="signal_cancelled").values_list("metadata", flat=True))
    assert statuses == {pending.pk: "cancelled", theirs.pk: "cancelled", executed.pk: "executed"}
    assert {a["actor"] for a in audits} == {"operator:ops1"}
    assert "cannot move from executed to cancelled" in response.content.decode()


def test_staff_revoke_an_ml_engine_key(admin_client, tenant):
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id, label="lstm")
    response = admin_client.post(
        "/admin/signals/mlenginekey/", {"action": "revoke", "_selected_action": [str(key.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert ml_engine_key_verify(key=plaintext) is None
    assert key.key_hash not in admin_client.get(f"/admin/signals/mlenginekey/{key.pk}/change/").content.decode()
