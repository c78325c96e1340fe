"""The trader portal through real requests: sign-up, accounts, API keys shown once, risk/settings pushed to the EA,
emergency stop, and privacy (consents, export, erasure)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.forms import EMAIL_TAKEN, HOURS_INCOMPLETE
from accounts.models import ApiKey, MT5Account, Tenant, User
from accounts.services import ea_authenticate
from compliance.models import AuditLog, UserConsent
from compliance.views import ERASE_CONFIRM_MISMATCH
from suho.routers import operator_path
from tests.factories import staff_login
from tests.portal.conftest import PASSWORD
from trading.models import EACommand


def _op(query):
    with operator_path():
        return list(query)


def test_sign_up_creates_a_tenant_and_its_first_user_and_signs_them_in(committed):
    client = Client()
    form = {"organisation": "Acme Trading", "username": "acme", "email": "ops@acme.example",
            "password1": PASSWORD, "password2": PASSWORD}  # fmt: skip
    response = client.post("/portal/signup/", form)
    assert response.status_code == 302 and response["Location"] == "/portal/"
    user = User.objects.get(username="acme")
    assert user.tenant.name == "Acme Trading" and user.check_password(PASSWORD)
    assert _op(
        AuditLog.objects.filter(tenant_id=user.tenant_id, event_type="tenant_signed_up").values_list(
            "user_id", flat=True
        )
    ) == [user.pk]
    page = client.get("/portal/")
    assert page.status_code == 200 and b"You have no MT5 account yet" in page.content


def test_sign_up_with_a_taken_e_mail_shows_the_error_and_creates_nothing(trader):
    form = {"organisation": "Other", "username": "other", "email": trader.email.upper(),
            "password1": PASSWORD, "password2": PASSWORD}  # fmt: skip
    response = Client().post("/portal/signup/", form)
    assert response.status_code == 200 and EMAIL_TAKEN in response.content.decode()
    assert not User.objects.filter(username="other").exists() and Tenant.objects.count() == 1


def test_log_in_and_password_reset_pages_render(committed):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/accounts/password_reset/").status_code == 200
    assert client.get("/portal/").status_code == 302  # signed out: to the log-in page


def test_added_account_gets_a_key_shown_once_that_authenticates_its_ea(trader, client_of):
    client = client_of(trader)
    response = client.post("/portal/accounts/add/", {"name": "Live 1", "account_type": "demo", "broker": "ICM"})
    assert response.status_code == 302
    account = _op(MT5Account.objects.filter(tenant_id=trader.tenant_id))[0]
    assert response["Location"] == f"/portal/accounts/{account.account_id}/"

    shown = client.post(f"/portal/accounts/{account.account_id}/keys/", {"label": "vps"})
    html = shown.content.decode()
    assert shown.status_code == 200 and shown["Cache-Control"] == "no-store"
    plaintext = html.split('id="api-key"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert plaintext.startswith("suho_ea_") and str(account.account_id) in html and "/ws/ea/" in html
    assert ea_authenticate(account_id=account.account_id, api_key=plaintext).account_id == account.account_id
    detail = client.get(f"/portal/accounts/{account.account_id}/").content.decode()
    assert plaintext not in detail and "vps" in detail  # never shown again


def test_rotate_revokes_the_old_key_and_shows_the_new_one_revoke_ends_it(account, client_of):
    client = client_of(account.user)
    client.post(f"/portal/accounts/{account.account_id}/keys/")
    old = _op(ApiKey.objects.filter(account=account))[0]
    rotated = client.post(f"/portal/accounts/{account.account_id}/keys/{old.id}/rotate/")
    assert rotated.status_code == 200 and b"suho_ea_" in rotated.content
    keys = {k.id: k for k in _op(ApiKey.objects.filter(account=account))}
    new = next(k for k in keys.values() if k.id != old.id)
    assert keys[old.id].revoked_at is not None and keys[old.id].replaced_by_id == new.id
    client.post(f"/portal/accounts/{account.account_id}/keys/{new.id}/revoke/")
    assert _op(ApiKey.objects.filter(id=new.id))[0].revoked_at is not None


def test_risk_parameters_save_bumps_the_version_and_a_bad_form_changes_nothing(account, client_of):
    client = client_of(account.user)
    url = f"/portal/accounts/{account.account_id}/risk/"
    assert client.get(url).status_code == 200
    form = {"trading_enabled": "on", "max_position_size": "2", "max_daily_loss": "300", "max_drawdown_percent": "15",
            "min_margin_level": "120", "allowed_symbols": "eurusd, XAUUSD", "sizing_method": "fixed_lots",
            "risk_percent": "1"}  # fmt: skip
    bad = client.post(url, {**form, "trading_hours_start_utc": "08:00"})
    assert bad.status_code == 200 and HOURS_INCOMPLETE in bad.content.decode()
    assert _op(MT5Account.objects.filter(pk=account.pk))[0].config_version == account.config_version
    assert client.post(url, form).status_code == 302
    saved = _op(MT5Account.objects.filter(pk=account.pk))[0]
    assert saved.config_version == account.config_version + 1
    assert saved.allowed_symbols == ["EURUSD", "XAUUSD"] and saved.max_daily_loss == 300


def test_ea_settings_save_bumps_the_version(account, client_of):
    client = client_of(account.user)
    url = f"/portal/accounts/{account.account_id}/settings/"
    form = {"sl_multiplier": "1.5", "tp_multiplier": "2", "slippage_tolerance_pips": "3", "max_spread_points": "25",
            "magic_number": "42", "comment_prefix": "mine"}  # fmt: skip
    assert client.post(url, form).status_code == 302
    saved = _op(MT5Account.objects.filter(pk=account.pk))[0]
    assert (saved.config_version, saved.magic_number, saved.comment_prefix) == (account.config_version + 1, 42, "mine")


def test_emergency_stop_turns_trading_off_and_issues_disable_trading(account, client_of):
    response = client_of(account.user).post(f"/portal/accounts/{account.account_id}/stop/")
    assert response.status_code == 302
    assert _op(MT5Account.objects.filter(pk=account.pk))[0].emergency_stop is True
    assert _op(EACommand.objects.filter(account_id=account.pk).values_list("kind", flat=True)) == ["disable_trading"]


def test_account_page_renders_every_section_with_empty_states(account, client_of):
    html = client_of(account.user).get(f"/portal/accounts/{account.account_id}/?symbol=EURUSD").content.decode()
    for text in ("No balance data yet", "No open positions", "No trades match", "No signals", "No risk events",
                 "No API key yet"):  # fmt: skip
        assert text in html


def test_consent_export_and_erasure(trader, client_of):
    client = client_of(trader)
    client.post("/portal/privacy/consent/", {"purpose": "marketing", "granted": "1"})
    assert _op(UserConsent.objects.filter(user=trader, granted=True).values_list("purpose", flat=True)) == ["marketing"]
    client.post("/portal/privacy/consent/", {"purpose": "marketing", "granted": "0"})
    assert not _op(UserConsent.objects.filter(user=trader, granted=True))
    export = client.get("/portal/privacy/export/")
    assert (
        export["Content-Disposition"].startswith("attachment")
        and json.loads(export.content)["user"]["username"] == "alice"
    )
    refused = client.post("/portal/privacy/erase/", {"confirm": "nope"})
    assert refused.status_code == 400 and ERASE_CONFIRM_MISMATCH in refused.content.decode()
    assert client.post("/portal/privacy/erase/", {"confirm": "alice"}).status_code == 302
    erased = User.objects.get(pk=trader.pk)
    assert erased.username.startswith("erased-") and not erased.is_active
    assert client.get("/portal/").status_code == 302


@pytest.mark.parametrize("path", ["/portal/", "/portal/privacy/"])
def test_an_operator_without_tenant_gets_404_not_someone_elses_data(committed, path):
    with operator_path():
        staff = User.objects.create_user(username="op", is_staff=True)
    client = Client()
    staff_login(client, staff)
    assert client.get(path).status_code == 404


def test_log_in_lands_on_the_accounts_page(trader):
    response = Client().post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/portal/"


def test_password_reset_mails_a_link_that_sets_a_new_password(trader, mailoutbox):
    client = Client()
    assert client.post("/accounts/password_reset/", {"email": trader.email}).status_code == 302
    [mail] = mailoutbox
    link = next(word for word in mail.body.split() if "/accounts/reset/" in word)
    path = "/" + link.split("/", 3)[3]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    new = "an entirely new passphrase"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and User.objects.get(pk=trader.pk).check_password(new)


def test_signals_page_lists_filters_and_cancels_a_pending_signal(account, client_of):
    from signals.models import TradingSignal
    from suho.tenancy import tenant_context
    from tests.factories import make_signal

    with tenant_context(account.tenant_id):
        signal = make_signal(account, symbol="EURUSD")
    client = client_of(account.user)
    assert str(signal.signal_id) in client.get("/portal/signals/").content.decode()
    assert b"No signals match" in client.get("/portal/signals/", {"symbol": "XAUUSD"}).content
    assert client.post(f"/portal/signals/{signal.signal_id}/cancel/").status_code == 302
    assert _op(TradingSignal.objects.filter(pk=signal.pk).values_list("status", flat=True)) == ["cancelled"]
    again = client.post(f"/portal/signals/{signal.signal_id}/cancel/", follow=True)
    assert again.status_code == 200 and b"msg-error" in again.content
