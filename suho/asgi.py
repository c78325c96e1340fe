"""ASGI entry point: HTTP through Django, WebSockets through Channels (`/ws/ea/` for EAs)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "suho.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from suho.client_addr import ClientAddressMiddleware  # noqa: E402
from suho.http import http_application  # noqa: E402
from suho.logging import access_log_redact_install  # noqa: E402

access_log_redact_install()  # daphne's access log would print the webhook's secret URL

application = ClientAddressMiddleware(  # X-Forwarded-For only as far as TRUSTED_PROXY_HOPS vouch for it
    ProtocolTypeRouter(
        {
            "http": http_application(django_asgi_app),  # one thread hop per request (suho/http.py)
            "websocket": URLRouter(import_string(settings.WEBSOCKET_URLPATTERNS)),
        }
    )
)
