"""Portal edges for a trader's privacy rights: consents, data export (download), erasure. Thin: one service each."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compliance.gdpr import consent_record, consent_withdraw, user_data_export, user_erase
from compliance.selectors import consents_of_user

CONSENT_PURPOSES = {
    "marketing": "News about Suho by e-mail",
    "analytics": "Anonymous usage statistics to improve the portal",
    "model_training": "Use of my accounts' execution feedback to train the signal model",
}
CONSENT_VERSION = "1"
ERASE_CONFIRM_MISMATCH = "Type your user name exactly to confirm."
ERASED = "Your personal data has been erased and you have been signed out."


class ConsentForm(forms.Form):
    purpose = forms.ChoiceField(choices=list(CONSENT_PURPOSES.items()))
    granted = forms.TypedChoiceField(choices=[("1", "grant"), ("0", "withdraw")], coerce=lambda v: v == "1")


class EraseForm(forms.Form):
    confirm = forms.CharField(label="Type your user name to confirm", max_length=150)

    def __init__(self, *args, username: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.username = username

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"] != self.username:
            raise forms.ValidationError(ERASE_CONFIRM_MISMATCH)
        return self.cleaned_data["confirm"]


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _trader(request):
    if request.user.tenant_id is None:
        raise Http404("This user belongs to no tenant.")
    return request.user


@login_required
def privacy(request):
    user = _trader(request)
    return render(request, "portal/privacy.html", _privacy_context(user, EraseForm(username=user.username)))


def _privacy_context(user, erase_form) -> dict:
    active, history = consents_of_user(user=user)
    purposes = [(key, label, key in active) for key, label in CONSENT_PURPOSES.items()]
    return {"purposes": purposes, "history": history, "erase_form": erase_form}


@login_required
@require_POST
def consent_change(request):
    user = _trader(request)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown consent.")
        return redirect("portal:privacy")
    purpose = form.cleaned_data["purpose"]
    if form.cleaned_data["granted"]:
        consent_record(
            user=user, purpose=purpose, version=CONSENT_VERSION, ip_address=_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )  # fmt: skip
        messages.success(request, f"Consent given: {CONSENT_PURPOSES[purpose]}.")
    else:
        try:
            consent_withdraw(user=user, purpose=purpose, ip_address=_ip(request))
            messages.success(request, f"Consent withdrawn: {CONSENT_PURPOSES[purpose]}.")
        except ValueError as exc:
            messages.error(request, str(exc))
    return redirect("portal:privacy")


@login_required
def data_export(request):
    document = user_data_export(user=_trader(request))
    response = HttpResponse(json.dumps(document, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="suho-my-data.json"'
    return response


@login_required
@require_POST
def erase(request):
    user = _trader(request)
    form = EraseForm(request.POST, username=user.username)
    if not form.is_valid():
        return render(request, "portal/privacy.html", _privacy_context(user, form), status=400)
    user_erase(user=user, actor=f"user:{user.pk}")
    logout(request)
    messages.success(request, ERASED)
    return redirect("home")
