"""`/ws/portal/`: live connection status of the signed-in trader's MT5 accounts, and on an account page
(`/ws/portal/?account=<id>`) that account's balance and equity, open positions and latest quotes.

Polls the database every POLL_INTERVAL_S and pushes the list when it changes. Why polling and not the NATS
heartbeat subjects: the database is where every part of the status is decided — online (the gateway), offline after
two silent minutes (a beat task, no message), refusals (written by authentication, no NATS subject) — so one
indexed query per browser every few seconds shows all of them, and survives any web process restart. An account
page's figures come the same way, each poll (trading.selectors.account_live: the cache the gateway writes, else
the newest rows), and are pushed when they changed: while the EA streams, that is every poll. It lives in `trading`,
the top layer, because it reads every app (docs/dependencies.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs
from uuid import UUID

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.selectors import portal_account_statuses
from suho.asyncdb import db_thread
from suho.tenancy import tenant_context
from trading.selectors import account_live

POLL_INTERVAL_S = 2.0
CLOSE_NOT_SIGNED_IN = 4401


def _statuses(tenant_id) -> list[dict]:
    with tenant_context(tenant_id):
        return portal_account_statuses()


def _account_live(tenant_id, account_id) -> dict | None:
    with tenant_context(tenant_id):
        return account_live(account_id=account_id)


def _watched_account(query_string: bytes) -> UUID | None:
    """The account page's `?account=<id>`; anything else watches no account (the status list still comes)."""
    try:
        return UUID(parse_qs(query_string.decode("latin-1")).get("account", [""])[0])
    except ValueError:
        return None


class PortalConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or user.tenant_id is None:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        self.tenant_id = user.tenant_id
        self.account_id = _watched_account(self.scope.get("query_string", b""))
        self.last = self.last_live = None
        await self.accept()
        self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code):
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _poll(self):
        while True:
            statuses = await db_thread(_statuses)(self.tenant_id)
            if statuses != self.last:
                self.last = statuses
                await self.send_json({"type": "status", "accounts": statuses})
            if self.account_id is not None:
                live = await db_thread(_account_live)(self.tenant_id, self.account_id)
                if live is not None and live != self.last_live:
                    self.last_live = live
                    await self.send_json({"type": "account", **live})
            await asyncio.sleep(POLL_INTERVAL_S)
