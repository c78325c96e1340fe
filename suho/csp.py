"""The Content-Security-Policy every response carries (portal, admin, login, API docs; issue 15, finding 13).

Scripts only from this origin: no inline script, no inline event handler, no eval, no other host (the portal's
handlers live in static/portal/portal.js, Swagger UI is vendored by drf-spectacular-sidecar and started by a script
URL of its own). Styles also allow inline `<style>`, which Django's admin and Swagger UI's page use; an injected
style cannot run code. Images may be `data:` URIs (Swagger UI's icons). `connect-src 'self'` covers the portal's
`/ws/portal/` socket on the same host. docs/decisions/0013-edge-limits-metrics-access-csp.md says why.
"""

from __future__ import annotations

from typing import Final

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Adds CONTENT_SECURITY_POLICY to each response that does not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
