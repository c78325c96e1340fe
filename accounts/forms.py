"""Portal forms: validate what a trader types before a service sees it."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm

from accounts.models import MT5Account, User, allowed_symbols_problem
from suho.edge import date_bounded

EMAIL_TAKEN = "An account with this e-mail address already exists."
SYMBOL_INVALID = "Symbols are letters and digits, separated by commas (e.g. EURUSD, XAUUSD): {symbol!r}."
HOURS_INCOMPLETE = "Give both the start and the end of the trading hours, or neither."


class SignupForm(BaseUserCreationForm):
    organisation = forms.CharField(max_length=200, label="Organisation or your name")

    class Meta(BaseUserCreationForm.Meta):
        model = User
        fields = ("organisation", "username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(EMAIL_TAKEN)
        return email


class AccountAddForm(forms.ModelForm):
    class Meta:
        model = MT5Account
        fields = ("name", "account_type", "account_number", "broker", "server")
        labels = {"account_number": "MT5 login (optional)", "name": "Name"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True


class RiskParametersForm(forms.Form):
    trading_enabled = forms.BooleanField(required=False)
    max_position_size = forms.DecimalField(min_value=0.01, max_digits=14, decimal_places=4, label="Max position (lots)")
    max_daily_loss = forms.DecimalField(min_value=0, max_digits=20, decimal_places=2, label="Max daily loss")
    max_drawdown_percent = forms.DecimalField(min_value=0, max_value=100, decimal_places=2, label="Max drawdown (%)")
    min_margin_level = forms.DecimalField(min_value=0, max_digits=10, decimal_places=2, label="Min margin level (%)")
    allowed_symbols = forms.CharField(required=False, help_text="Comma-separated; empty = every symbol.")
    trading_hours_start_utc = forms.TimeField(required=False, label="Trading hours start (UTC, HH:MM)")
    trading_hours_end_utc = forms.TimeField(required=False, label="Trading hours end (UTC, HH:MM)")
    sizing_method = forms.ChoiceField(choices=MT5Account.SizingMethod.choices)
    risk_percent = forms.DecimalField(min_value=0.001, max_value=100, decimal_places=3, label="Risk per trade (%)")

    @classmethod
    def for_account(cls, account: MT5Account, data=None):
        initial = {name: getattr(account, name) for name in cls.base_fields}
        initial["allowed_symbols"] = ", ".join(account.allowed_symbols)
        return cls(data=data, initial=initial)

    def clean_allowed_symbols(self) -> list[str]:
        symbols = [s.strip().upper() for s in self.cleaned_data["allowed_symbols"].split(",") if s.strip()]
        for symbol in symbols:
            if not symbol.isalnum():
                raise forms.ValidationError(SYMBOL_INVALID.format(symbol=symbol))
        problem = allowed_symbols_problem(symbols)
        if problem:
            raise forms.ValidationError(problem)
        return symbols

    def clean(self):
        data = super().clean()
        if (data.get("trading_hours_start_utc") is None) != (data.get("trading_hours_end_utc") is None):
            raise forms.ValidationError(HOURS_INCOMPLETE)
        return data


class EASettingsForm(forms.Form):
    sl_multiplier = forms.DecimalField(min_value=0, max_digits=8, decimal_places=3, label="Stop-loss multiplier")
    tp_multiplier = forms.DecimalField(min_value=0, max_digits=8, decimal_places=3, label="Take-profit multiplier")
    slippage_tolerance_pips = forms.DecimalField(min_value=0, max_digits=8, decimal_places=2, label="Slippage (pips)")
    max_spread_points = forms.DecimalField(min_value=0, max_digits=10, decimal_places=1, label="Max spread (points)")
    magic_number = forms.IntegerField(min_value=0, max_value=2**63 - 1)
    comment_prefix = forms.CharField(max_length=20, required=False)

    @classmethod
    def for_account(cls, account: MT5Account, data=None):
        return cls(data=data, initial={name: getattr(account, name) for name in cls.base_fields})


class TradeFilterForm(forms.Form):
    symbol = forms.CharField(max_length=32, required=False)
    status = forms.ChoiceField(choices=[("", "any"), ("open", "open"), ("closed", "closed")], required=False)
    since = forms.DateField(required=False, label="From", validators=[date_bounded],
                            widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
    until = forms.DateField(required=False, label="Until", validators=[date_bounded],
                            widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
