"""Portal edges for a trader's signals: every account's signals with their lifecycle and slippage, filters and
pages, and cancelling a pending one (through `signal_cancel`). Another tenant's signal is invisible: 404."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from signals import selectors
from signals.models import TradingSignal
from signals.services import SignalTransitionError, signal_cancel

SIGNALS_PER_PAGE = 50
SIGNAL_NOT_FOUND = "No such signal."


class SignalFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any"), *TradingSignal.Status.choices], required=False)
    symbol = forms.CharField(max_length=32, required=False)


def _trader(request):
    if request.user.tenant_id is None:
        raise Http404("This user belongs to no tenant.")
    return request.user


@login_required
def signal_list(request):
    _trader(request)
    filters = SignalFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    signals = selectors.signals_list(
        status=criteria.get("status") or None, symbol=(criteria.get("symbol") or "").upper()
    )
    page = Paginator(signals.select_related("account", "execution"), SIGNALS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "portal/signals.html", {"signals": page, "filters": filters, "query": query.urlencode()})


@login_required
@require_POST
def signal_cancel_view(request, signal_id):
    user = _trader(request)
    signal = selectors.signal_get(signal_id=signal_id)
    if signal is None:
        raise Http404(SIGNAL_NOT_FOUND)
    try:
        signal_cancel(signal=signal, actor=f"user:{user.username}", user_id=user.pk)
        messages.success(request, f"Signal {signal.symbol} {signal.action} cancelled.")
    except SignalTransitionError as exc:
        messages.error(request, exc.message)
    return redirect("portal:signals")
