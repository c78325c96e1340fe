"""`/ws/portal/`: live connection status of the signed-in trader's MT5 accounts.

Polls the database every POLL_INTERVAL_S and pushes the list when it changes. Why polling and not the NATS
heartbeat subjects: the database is where every part of the status is decided — online (the gateway), offline after
two silent minutes (a beat task, no message), refusals (written by authentication, no NATS subject) — so one
indexed query per browser every few seconds shows all of them, and survives any web process restart.
"""

from __future__ import annotations

import asyncio
import contextlib

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.selectors import portal_account_statuses
from suho.asyncdb import db_thread
from suho.tenancy import tenant_context

POLL_INTERVAL_S = 2.0
CLOSE_NOT_SIGNED_IN = 4401


def _statuses(tenant_id) -> list[dict]:
    with tenant_context(tenant_id):
        return portal_account_statuses()


class PortalConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or user.tenant_id is None:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        self.tenant_id = user.tenant_id
        self.last = None
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
            await asyncio.sleep(POLL_INTERVAL_S)
