"""The operator dashboard as the admin index (compliance/admin_urls.py, which suho.urls mounts at /admin/ first)."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from compliance.dashboard import operator_dashboard as dashboard_figures


def operator_dashboard(request):
    """/admin/ (wrapped by admin_view: active staff with the second factor; the operator path covers every tenant):
    the figures, then Django's list of models."""
    context = {**admin.site.each_context(request), "title": "Operator dashboard", "subtitle": None,
               "app_list": admin.site.get_app_list(request), **dashboard_figures()}  # fmt: skip
    request.current_app = admin.site.name
    return TemplateResponse(request, "admin/operator_dashboard.html", context)
