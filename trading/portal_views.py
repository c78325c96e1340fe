"""The portal's account page: the account, its live figures, balance chart, trades, signals, risk events and keys.

It shows the gateway's and the signals' rows, so it sits in `trading` (docs/dependencies.md); the account's own
pages are accounts/views.py. The risk events come from compliance, the layer above, through the template's
`compliance_portal` tag. Thin: parse the filters, call selectors, render.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts.forms import TradeFilterForm
from accounts.views import portal_account_or_404
from signals.selectors import account_signals
from trading.selectors import account_live, balance_series, trades_history

CHART_WINDOW = timedelta(hours=24)
TRADES_PER_PAGE = 25


@login_required
def account_detail(request, account_id):
    account = portal_account_or_404(request, account_id)
    filters = TradeFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    trades = trades_history(
        account_id=account.account_id, symbol=criteria.get("symbol", ""), status=criteria.get("status", ""),
        since=_day_start(criteria.get("since")), until=_day_start(criteria.get("until"), plus_days=1),
    )  # fmt: skip
    page = Paginator(trades, TRADES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    live = account_live(account_id=account.account_id)  # what /ws/portal/ then keeps current
    context = {
        "account": account,
        "online": live["online"],
        "balance": live["balance"],
        "chart": balance_series(account_id=account.account_id, since=timezone.now() - CHART_WINDOW),
        "positions": live["positions"],
        "quotes": live["quotes"],
        "filters": filters,
        "trades": page,
        "query": query.urlencode(),
        "signals": account_signals(account_id=account.account_id),
        "api_keys": account_selectors.account_api_keys(account_id=account.account_id),
    }
    bad_filter = filters.is_bound and not filters.is_valid()  # shown with its error, trades unfiltered
    return render(request, "portal/account_detail.html", context, status=400 if bad_filter else 200)


def _day_start(day, plus_days: int = 0):
    if day is None:
        return None
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=plus_days)
