"""WebSocket routes. The EA gateway's consumer is added by the trading app."""

websocket_urlpatterns: list = []
