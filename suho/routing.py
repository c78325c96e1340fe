"""WebSocket routes: `/ws/ea/` for MT5 EAs (Suho Binary Protocol); `/ws/portal/` for signed-in traders' live status."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from trading.consumers import EAConsumer
from trading.portal import PortalConsumer

websocket_urlpatterns = [
    path("ws/ea/", EAConsumer.as_asgi()),
    path("ws/portal/", AllowedHostsOriginValidator(AuthMiddlewareStack(PortalConsumer.as_asgi()))),
]
