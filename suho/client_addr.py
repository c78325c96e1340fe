"""The client's address behind trusted proxies: `TRUSTED_PROXY_HOPS` says how many proxies in front of the server
append to `X-Forwarded-For`, so which entry (counted from the right) is the client's.

Entries to the left of that one were written by the client and prove nothing; with 0 hops (the default) the
header is ignored and the TCP peer is the client. `ClientAddressMiddleware` applies the rule once, to the ASGI
scope of every HTTP request and WebSocket, so Django's REMOTE_ADDR, the rate limits and the audit log all see the
same address.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_addr(*, peer: str | None, forwarded_for: str | None, hops: int) -> str | None:
    """The address `hops` proxies in front of us vouch for; the peer when none is trusted or the entry is bad."""
    if hops <= 0 or not forwarded_for:
        return peer
    entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
    if not entries:
        return peer
    candidate = entries[-hops] if len(entries) >= hops else entries[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def _forwarded_for(scope) -> str | None:
    values = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    return ",".join(values) if values else None


class ClientAddressMiddleware:
    """ASGI middleware: `scope["client"]` becomes the client `TRUSTED_PROXY_HOPS` proxies vouch for."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        hops = settings.TRUSTED_PROXY_HOPS
        if hops > 0 and scope.get("type") in {"http", "websocket"}:
            peer_host, _peer_port = (scope.get("client") or (None, 0))[:2]
            address = client_addr(peer=peer_host, forwarded_for=_forwarded_for(scope), hops=hops)
            if address is not None and address != peer_host:
                scope = {**scope, "client": (address, 0)}
        return await self.app(scope, receive, send)
