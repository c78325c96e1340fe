"""REST routes for traders, mounted under /api/: token pair (staff: an access token with a TOTP code), accounts,
balances, trades, executions, feedback."""

from django.urls import path

from accounts import user_api

urlpatterns = [
    path("token/", user_api.UserTokenObtainView.as_view(), name="user-token"),
    path("token/refresh/", user_api.UserTokenRefreshView.as_view(), name="user-token-refresh"),
    path("staff/token/", user_api.StaffTokenObtainView.as_view(), name="staff-token"),
    path("accounts/", user_api.AccountListApi.as_view(), name="api-accounts"),
    path("accounts/<uuid:account_id>/", user_api.AccountDetailApi.as_view(), name="api-account"),
    path("accounts/<uuid:account_id>/balances/", user_api.AccountBalancesApi.as_view(), name="api-balances"),
    path("accounts/<uuid:account_id>/trades/", user_api.AccountTradesApi.as_view(), name="api-trades"),
    path("accounts/<uuid:account_id>/risk-events/", user_api.AccountRiskEventsApi.as_view(), name="api-risk-events"),
    path("executions/", user_api.ExecutionListApi.as_view(), name="api-executions"),
    path("feedback/", user_api.FeedbackApi.as_view(), name="api-feedback"),
]
