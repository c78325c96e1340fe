"""Portal edges for traders: sign-up, MT5 accounts, API keys, risk parameters, EA settings, emergency stop.

Thin: parse the form, call one service or selector, render. Every request of a signed-in user runs under their
tenant (suho.tenancy): another tenant's account is invisible, so `portal_account_or_404` answers 404 for it. The
account page, which shows the gateway's and the signals' rows, is a layer up (trading/portal_views.py).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import selectors
from accounts.forms import AccountAddForm, EASettingsForm, RiskParametersForm, SignupForm
from accounts.models import ApiKey, MT5Account
from accounts.services import (
    ApiKeyError,
    account_ea_settings_update,
    account_emergency_stop,
    account_risk_parameters_update,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    mt5_account_create,
    tenant_signup,
)

EMERGENCY_STOPPED = "Emergency stop sent: trading is off and the EA was told to disable trading."
RISK_SAVED = "Risk parameters saved and pushed to the EA (version {version})."
SETTINGS_SAVED = "EA settings saved and pushed to the EA (version {version})."
KEY_REVOKED = "API key {key} revoked; EAs using it are disconnected within a minute."
ACCOUNT_NO_TENANT = "This user belongs to no tenant."
ACCOUNT_NOT_FOUND = "No such MT5 account."
KEY_NOT_FOUND = "No such API key."


def _tenant_user(request):
    if request.user.tenant_id is None:
        raise Http404(ACCOUNT_NO_TENANT)
    return request.user


def portal_account_or_404(request, account_id) -> MT5Account:
    """The signed-in trader's account (404 for an unknown id and for another tenant's account alike)."""
    _tenant_user(request)
    account = selectors.portal_account(account_id=account_id)
    if account is None:
        raise Http404(ACCOUNT_NOT_FOUND)
    return account


def _api_key(account, key_id) -> ApiKey:
    api_key = selectors.account_api_key(account=account, key_id=key_id)
    if api_key is None:
        raise Http404(KEY_NOT_FOUND)
    return api_key


def signup(request):
    if request.user.is_authenticated:
        return redirect("portal:accounts")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = tenant_signup(
            name=form.cleaned_data["organisation"], username=form.cleaned_data["username"],
            email=form.cleaned_data["email"], password=form.cleaned_data["password1"],
        )  # fmt: skip
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("portal:accounts")
    return render(request, "portal/signup.html", {"form": form})


@login_required
def account_list(request):
    _tenant_user(request)
    accounts = [(account, selectors.ea_is_online(account)) for account in selectors.portal_accounts()]
    return render(request, "portal/account_list.html", {"accounts": accounts})


@login_required
def account_add(request):
    user = _tenant_user(request)
    form = AccountAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        account = mt5_account_create(user=user, **form.cleaned_data)
        messages.success(request, f"Account {account} added. Generate an API key for its EA below.")
        return redirect("portal:account", account_id=account.account_id)
    return render(request, "portal/account_add.html", {"form": form})


@login_required
@require_POST
def api_key_new(request, account_id):
    account = portal_account_or_404(request, account_id)
    api_key, plaintext = api_key_create(account=account, created_by=request.user, label=request.POST.get("label", ""))
    return _key_shown(request, account, api_key, plaintext)


@login_required
@require_POST
def api_key_rotate_view(request, account_id, key_id):
    account = portal_account_or_404(request, account_id)
    old = _api_key(account, key_id)
    try:
        api_key, plaintext = api_key_rotate(api_key=old, by=request.user)
    except ApiKeyError as exc:
        messages.error(request, str(exc))
        return redirect("portal:account", account_id=account.account_id)
    return _key_shown(request, account, api_key, plaintext)


@login_required
@require_POST
def api_key_revoke_view(request, account_id, key_id):
    account = portal_account_or_404(request, account_id)
    api_key = api_key_revoke(api_key=_api_key(account, key_id), by=request.user)
    messages.success(request, KEY_REVOKED.format(key=api_key))
    return redirect("portal:account", account_id=account.account_id)


def _key_shown(request, account, api_key, plaintext):
    scheme = "wss" if request.is_secure() else "ws"
    context = {
        "account": account, "api_key": api_key, "plaintext": plaintext,
        "ws_url": f"{scheme}://{request.get_host()}/ws/ea/", "agent_pip": settings.EA_AGENT_PIP,
    }  # fmt: skip
    response = render(request, "portal/api_key_shown.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
def account_risk(request, account_id):
    account = portal_account_or_404(request, account_id)
    form = RiskParametersForm.for_account(account, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        account = account_risk_parameters_update(account=account, changes=form.cleaned_data, actor=request.user)
        messages.success(request, RISK_SAVED.format(version=account.config_version))
        return redirect("portal:account", account_id=account.account_id)
    return render(request, "portal/account_form.html", {"account": account, "form": form, "title": "Risk parameters"})


@login_required
def account_settings(request, account_id):
    account = portal_account_or_404(request, account_id)
    form = EASettingsForm.for_account(account, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        account = account_ea_settings_update(account=account, changes=form.cleaned_data, by=request.user)
        messages.success(request, SETTINGS_SAVED.format(version=account.config_version))
        return redirect("portal:account", account_id=account.account_id)
    return render(request, "portal/account_form.html", {"account": account, "form": form, "title": "EA settings"})


@login_required
@require_POST
def account_stop(request, account_id):
    account = portal_account_or_404(request, account_id)
    account_emergency_stop(account=account, by=request.user)
    messages.warning(request, EMERGENCY_STOPPED)
    return redirect("portal:account", account_id=account.account_id)


@login_required
def protocol_doc(request):
    """docs/protocol.md as plain text: the EA setup page links here (the spec an EA is written from)."""
    text = (settings.BASE_DIR / "docs" / "protocol.md").read_text(encoding="utf-8")
    return HttpResponse(text, content_type="text/plain; charset=utf-8")
