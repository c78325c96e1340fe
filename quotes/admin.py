"""Read-only admin for broker quotes (per tenant) and reference quotes (platform-wide)."""

from __future__ import annotations

from django.contrib import admin

from quotes.models import BrokerQuote, ReferenceQuote
from suho.admin_site import ReadOnlyAdmin


@admin.register(BrokerQuote)
class BrokerQuoteAdmin(ReadOnlyAdmin):
    show_full_result_count = False  # time series: no second count(*) over the whole table
    list_select_related = ("tenant", "account")
    list_display = ("time", "tenant", "account", "symbol", "bid", "ask", "spread", "broker_server", "tradeable",
                    "price_deviation", "deviation_percent")  # fmt: skip
    list_filter = ("symbol", "tradeable", "quote_quality", "tenant")
    search_fields = ("symbol", "broker_server", "account__name")
    date_hierarchy = "time"


@admin.register(ReferenceQuote)
class ReferenceQuoteAdmin(ReadOnlyAdmin):
    show_full_result_count = False
    list_display = ("time", "symbol", "bid", "ask", "source")
    list_filter = ("symbol", "source")
    list_select_related = ()
    search_fields = ("symbol",)
    date_hierarchy = "time"
