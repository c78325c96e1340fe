"""REST routes for traders, mounted under /api/: token pair (staff: an access token with a TOTP code), accounts
(balances, trades, executions and feedback: trading/user_api_urls.py; risk events: compliance/user_api_urls.py)."""

from django.urls import path

from accounts import user_api

urlpatterns = [
    path("token/", user_api.UserTokenObtainView.as_view(), name="user-token"),
    path("token/refresh/", user_api.UserTokenRefreshView.as_view(), name="user-token-refresh"),
    path("staff/token/", user_api.StaffTokenObtainView.as_view(), name="staff-token"),
    path("accounts/", user_api.AccountListApi.as_view(), name="api-accounts"),
    path("accounts/<uuid:account_id>/", user_api.AccountDetailApi.as_view(), name="api-account"),
]
