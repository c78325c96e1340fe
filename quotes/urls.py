"""Analytics REST routes, mounted under /api/analytics/."""

from django.urls import path

from quotes import api

urlpatterns = [
    path("deviation/", api.DeviationApi.as_view(), name="analytics-deviation"),
    path("deviation/anomalies/", api.DeviationAnomaliesApi.as_view(), name="analytics-deviation-anomalies"),
]
