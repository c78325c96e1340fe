"""WebSocket routes: `/ws/ea/` for MT5 EAs (Suho Binary Protocol)."""

from django.urls import path

from trading.consumers import EAConsumer

websocket_urlpatterns = [path("ws/ea/", EAConsumer.as_asgi())]
