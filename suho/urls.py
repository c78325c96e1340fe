"""HTTP routes: health, admin, the portal, the REST API and its OpenAPI docs."""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, reverse_lazy
from django.views.generic import RedirectView, TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.admin_login import PortalLoginForm
from compliance.dashboard_views import operator_dashboard
from suho import health, metrics

handler500 = "suho.errors.server_error"  # a pool timeout outside a view is 503 database_busy, not 500

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # The operator dashboard is the admin index: this route comes before the admin's own `admin:index`
    path("admin/", admin.site.admin_view(operator_dashboard), name="operator-dashboard"),
    path("admin/dashboard/", RedirectView.as_view(pattern_name="operator-dashboard")),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        LoginView.as_view(next_page=reverse_lazy("portal:accounts"), authentication_form=PortalLoginForm),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("portal/", include("trading.portal_urls")),
    path("api/ea/", include("accounts.urls")),
    path("api/signals/", include("signals.urls")),
    path("api/tv/", include("signals.webhook_urls")),
    path("api/analytics/", include("quotes.urls")),
    path("api/compliance/", include("compliance.urls")),
    path("api/", include("accounts.user_api_urls")),
    path("api/", include("trading.user_api_urls")),
    path("api/", include("compliance.user_api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from static files (sidecar); its start-up script is a URL of its own, not inline (suho/csp.py)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
