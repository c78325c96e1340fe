"""The log-in forms. The admin's: user name, password and (for staff who need one) the TOTP code, checked together.

A wrong password, a wrong or missing code, a staff user without an enrolled secret (with OPERATOR_2FA_REQUIRED)
and a non-staff user all get the same message, so the form never tells a correct password apart from a wrong one.
The rule for who needs a code is accounts/staff_auth.py's. The portal's form refuses staff who need a code with
the message of a wrong password: operators log in at /admin/login/.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.views.decorators.debug import sensitive_variables

from accounts.staff_auth import staff_login_accept, staff_needs_second_factor
from accounts.throttle import LoginThrottled, password_login

STAFF_LOGIN_INVALID = (
    "Please enter the correct user name, password and authentication code of a staff account. "
    "All fields may be case-sensitive."
)


class ThrottledLoginMixin:
    """clean() through accounts.throttle's back-off; each form says which users it lets in (login_accept)."""

    def login_accept(self):
        raise NotImplementedError

    @sensitive_variables()
    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        try:
            user = password_login(
                request=self.request, username=username, password=password, accept=self.login_accept()
            )
        except LoginThrottled as exc:
            raise forms.ValidationError(exc.message, code="throttled") from exc
        if user is None:
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(user)
        self.user_cache = user
        return self.cleaned_data


class OperatorLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    error_messages = {**AdminAuthenticationForm.error_messages, "invalid_login": STAFF_LOGIN_INVALID}

    otp_code = forms.CharField(
        label="Authentication code", required=False, max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="6 digits from your authenticator app.",
    )  # fmt: skip

    def login_accept(self):
        return staff_login_accept(self.cleaned_data.get("otp_code"))


class PortalLoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The portal's log-in; staff who need a code are refused as if the password were wrong (the code is asked for
    on the admin's log-in only)."""

    def login_accept(self):
        return lambda user: not staff_needs_second_factor(user)
