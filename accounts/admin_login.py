"""The admin log-in with a second factor: staff with a TOTP secret must give the current code; with
OPERATOR_2FA_REQUIRED on, staff without one cannot log in until `manage.py operator_totp_enable`."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm

from accounts.totp import totp_verify

TOTP_INVALID = "The authentication code is missing or wrong; use the current code from your authenticator app."
TOTP_NOT_ENROLLED = "Two-factor log-in is required: ask an administrator to run manage.py operator_totp_enable."


class OperatorLoginForm(AdminAuthenticationForm):
    otp_code = forms.CharField(
        label="Authentication code", required=False, max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="6 digits from your authenticator app (if two-factor log-in is on for you).",
    )  # fmt: skip

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if user.totp_secret:
            if not totp_verify(user.totp_secret, self.cleaned_data.get("otp_code", "")):
                raise forms.ValidationError(TOTP_INVALID, code="totp_invalid")
        elif settings.OPERATOR_2FA_REQUIRED:
            raise forms.ValidationError(TOTP_NOT_ENROLLED, code="totp_not_enrolled")
