"""HTTP routes: health, admin, the portal, the REST API and its OpenAPI docs. The apps' routes by name (`include`):
suho imports no app (docs/dependencies.md)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from suho import health, metrics

handler500 = "suho.errors.server_error"  # a pool timeout outside a view is 503 database_busy, not 500

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # The operator dashboard is the admin index: this route comes before the admin's own `admin:index`
    path("admin/", include("compliance.admin_urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.login_urls")),  # before Django's own log-in view
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
