"""Signal REST routes, mounted under /api/signals/."""

from django.urls import path

from signals import api

urlpatterns = [
    path("", api.SignalListCreateApi.as_view(), name="signals"),
    path("feedback/", api.FeedbackApi.as_view(), name="signals-feedback"),
    path("<uuid:signal_id>/", api.SignalDetailApi.as_view(), name="signal-detail"),
    path("<uuid:signal_id>/cancel/", api.SignalCancelApi.as_view(), name="signal-cancel"),
]
