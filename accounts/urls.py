"""EA REST routes, mounted under /api/ea/."""

from django.urls import path

from accounts import api

urlpatterns = [
    path("auth", api.EAAuthApi.as_view(), name="ea-auth"),
    path("token/refresh", api.EATokenRefreshApi.as_view(), name="ea-token-refresh"),
]
