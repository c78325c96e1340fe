"""The operator dashboard as the admin's index: suho.urls mounts these at /admin/, before the admin's own routes."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from compliance.dashboard_views import operator_dashboard

urlpatterns = [
    path("", admin.site.admin_view(operator_dashboard), name="operator-dashboard"),
    path("dashboard/", RedirectView.as_view(pattern_name="operator-dashboard")),
]
