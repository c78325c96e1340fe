"""WebSocket routes: `/ws/ea/` for MT5 EAs (Suho Binary Protocol); `/ws/portal/` for signed-in traders' live status.
suho/asgi.py loads them by name (settings.WEBSOCKET_URLPATTERNS), as Django loads ROOT_URLCONF."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from trading.consumers import EAConsumer
from trading.portal import PortalConsumer

websocket_urlpatterns = [
    path("ws/ea/", EAConsumer.as_asgi()),
    path("ws/portal/", AllowedHostsOriginValidator(AuthMiddlewareStack(PortalConsumer.as_asgi()))),
]
