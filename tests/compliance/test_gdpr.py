"""GDPR: consents with version, purpose, time, IP and agent; a user's export holds their data and nobody else's;
erasure pseudonymises the person, keeps the money records, and the audit chain still verifies."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from factories import make_account, make_order, make_signal, make_tenant, make_user

from accounts.models import MT5Account, User
from compliance.audit import audit_verify
from compliance.gdpr import CONSENT_NOT_GIVEN, consent_record, consent_withdraw, user_data_export, user_erase
from compliance.models import UserConsent
from suho.routers import operator_path
from suho.tenancy import tenant_context
from trading.models import TradeOrder


@pytest.fixture
def two_traders(committed):
    """Two users of one tenant, each with an account, a trade, a signal and a consent."""
    tenant = make_tenant()
    people = []
    for n, name in enumerate(("alice", "bob")):
        user = make_user(tenant, email=f"{name}@example.com", first_name=name.title(), last_name="Doe")
        account = make_account(tenant, user, name=f"{name}'s EA")
        order = make_order(account, profit=Decimal(f"{10 + n}.00"))
        signal = make_signal(account)
        consent = consent_record(user=user, purpose="terms", version="2.1", ip_address=f"198.51.100.{n + 1}",
                                 user_agent=f"{name}-browser")  # fmt: skip
        people.append((user, account, order, signal, consent))
    return tenant, people


def test_consents_are_recorded_and_withdrawn_keeping_the_row(two_traders):
    tenant, [(alice, *_, consent), _] = two_traders
    assert (consent.purpose, consent.version, consent.granted, consent.ip_address, consent.user_agent) == (
        "terms", "2.1", True, "198.51.100.1", "alice-browser")  # fmt: skip
    assert consent_withdraw(user=alice, purpose="terms") == 1
    with tenant_context(tenant.id):
        row = UserConsent.objects.get(pk=consent.pk)
    assert (row.granted, row.withdrawn_at is not None) == (False, True)
    with pytest.raises(ValueError, match=CONSENT_NOT_GIVEN.format(purpose="terms")):
        consent_withdraw(user=alice, purpose="terms")


def test_an_export_holds_the_users_accounts_trades_signals_and_consents_and_nothing_of_another_user(two_traders):
    _, [(alice, account, order, signal, consent), (bob, bob_account, bob_order, bob_signal, bob_consent)] = two_traders
    document = user_data_export(user=alice)
    text = json.dumps(document)

    assert document["user"]["email"] == "alice@example.com"
    assert [a["account_id"] for a in document["mt5_accounts"]] == [str(account.pk)]
    assert [t["order_id"] for t in document["trades"]] == [str(order.pk)]
    assert [s["signal_id"] for s in document["signals"]] == [str(signal.pk)]
    assert [(c["id"], c["ip_address"]) for c in document["consents"]] == [(str(consent.pk), "198.51.100.1")]
    for foreign in (bob.pk, bob.email, bob_account.pk, bob_order.pk, bob_signal.pk, bob_consent.pk, "bob-browser"):
        assert str(foreign) not in text


def test_erasure_pseudonymises_keeps_money_records_and_the_audit_chain_verifies(two_traders):
    tenant, [(alice, account, order, _, consent), (bob, *_)] = two_traders
    assert all(report.ok for report in audit_verify())

    erased = user_erase(user=alice, actor="dpo")

    with operator_path():
        fresh = User.objects.get(pk=alice.pk)
        untouched = User.objects.get(pk=bob.pk)
    assert fresh.username.startswith("erased-") and "alice" not in fresh.username
    assert (fresh.email, fresh.first_name, fresh.last_name, fresh.is_active) == ("", "", "", False)
    assert not fresh.has_usable_password() and erased.username == fresh.username
    assert (untouched.email, untouched.first_name) == ("bob@example.com", "Bob")
    with tenant_context(tenant.id):
        assert MT5Account.objects.get(pk=account.pk).name == ""
        assert UserConsent.objects.filter(pk=consent.pk).values_list("ip_address", "user_agent").get() == (None, "")
        kept = TradeOrder.objects.get(pk=order.pk)
    assert (kept.profit, kept.account_id) == (Decimal("10.00"), account.pk)
    assert "alice" not in json.dumps(user_data_export(user=fresh)).lower()

    reports = audit_verify()
    assert reports and all(report.ok for report in reports), [str(r.first_break) for r in reports]


def test_a_signed_in_user_exports_records_and_withdraws_consent_over_the_api(two_traders):
    _, [(alice, account, *_), (bob, *_)] = two_traders
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="portal-test")
    client.force_login(alice)

    created = client.post("/api/compliance/consents", {"purpose": "marketing", "version": "3"},
                          content_type="application/json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert (created.json()["purpose"], created.json()["granted"]) == ("marketing", True)
    export = client.get("/api/compliance/me/export")
    assert export.status_code == 200 and "attachment" in export["Content-Disposition"]
    document = export.json()
    assert [a["account_id"] for a in document["mt5_accounts"]] == [str(account.pk)]
    assert {(c["purpose"], c["ip_address"], c["user_agent"]) for c in document["consents"]} >= {
        ("marketing", "203.0.113.9", "portal-test")}  # fmt: skip
    assert bob.email not in export.content.decode()

    assert client.delete("/api/compliance/consents/marketing").status_code == 204
    assert client.delete("/api/compliance/consents/marketing").status_code == 404
    assert client.post("/api/compliance/consents", {"purpose": ""}, content_type="application/json").status_code == 400


def test_gdpr_erase_command_pseudonymises_the_user(two_traders):
    _, [(alice, *_), _] = two_traders
    out = io.StringIO()
    call_command("gdpr_erase", "--user", str(alice.pk), "--actor", "dpo@example.com", stdout=out)
    with operator_path():
        assert User.objects.get(pk=alice.pk).username in out.getvalue()
    with pytest.raises(CommandError, match="No user with id"):
        call_command("gdpr_erase", "--user", "not-a-uuid")
