"""The TradingView alert webhook, mounted under /api/tv/: the path segment is the account's secret token."""

from django.urls import path

from signals import api

urlpatterns = [path("<str:token>/", api.TradingViewWebhookApi.as_view(), name="tradingview-webhook")]
