"""REST routes for traders over the gateway's and the signals' rows, mounted under /api/: balances, trades,
executions, feedback (the accounts' own routes are accounts/user_api_urls.py)."""

from django.urls import path

from trading import user_api

urlpatterns = [
    path("accounts/<uuid:account_id>/balances/", user_api.AccountBalancesApi.as_view(), name="api-balances"),
    path("accounts/<uuid:account_id>/trades/", user_api.AccountTradesApi.as_view(), name="api-trades"),
    path("executions/", user_api.ExecutionListApi.as_view(), name="api-executions"),
    path("feedback/", user_api.FeedbackApi.as_view(), name="api-feedback"),
]
