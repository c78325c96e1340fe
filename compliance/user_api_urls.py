"""REST routes for traders from compliance, mounted under /api/ beside accounts' and trading's: risk events."""

from django.urls import path

from compliance import api

urlpatterns = [
    path("accounts/<uuid:account_id>/risk-events/", api.AccountRiskEventsApi.as_view(), name="api-risk-events"),
]
