"""One session check for all of a process's EA connections every 30 s, instead of one query per connection.

A revoked key, an ended session or a disabled account/tenant closes the socket (REVOKED), a session a newer one of
its account replaced closes it (REPLACED: the backstop when that newer session's process could not reach this one,
decision 0017), and an expired access token closes it (SESSION_EXPIRED), each within one interval. With 1,000 EAs
on a process the per-connection check was a thread hop and a query 33 times a second, competing with deliveries for
the GIL; this is one query per tenant. One watch per event loop (tests run each on a loop of their own); it runs
while it has connections.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from datetime import UTC, datetime

from accounts.selectors import ea_sessions_active, ea_sessions_replaced
from binproto import CloseCode
from suho.asyncdb import db_thread
from trading.gateway import SESSION_REPLACED_REASON

log = logging.getLogger(__name__)

SESSION_CHECK_INTERVAL_S = 30.0
ACCESS_EXPIRED_REASON = "access token expired; refresh it or re-authenticate"
SESSION_REVOKED_REASON = "session ended or API key revoked"
_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop → SessionWatch


class SessionWatch:
    def __init__(self) -> None:
        self.consumers: set = set()
        self.task: asyncio.Task | None = None

    def add(self, consumer) -> None:
        self.consumers.add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, consumer) -> None:
        self.consumers.discard(consumer)

    async def _run(self) -> None:
        while self.consumers:
            await asyncio.sleep(SESSION_CHECK_INTERVAL_S)
            try:
                await self.check()
            except Exception:
                log.exception("session check failed; the next one runs in %s s", SESSION_CHECK_INTERVAL_S)

    async def check(self) -> None:
        """Close every watched connection whose token expired or whose session may not go on."""
        now = datetime.now(UTC)
        by_tenant: dict = defaultdict(list)
        for consumer in list(self.consumers):
            if consumer.closing:
                self.consumers.discard(consumer)
            elif consumer.claims.expires_at <= now:
                self.consumers.discard(consumer)
                await consumer.close_with(CloseCode.SESSION_EXPIRED, ACCESS_EXPIRED_REASON)
            else:
                by_tenant[consumer.claims.tenant_id].append(consumer)
        for tenant_id, consumers in by_tenant.items():
            active = await db_thread(ea_sessions_active)(
                tenant_id=tenant_id, session_ids=[consumer.claims.session_id for consumer in consumers]
            )
            ending = [consumer for consumer in consumers if consumer.claims.session_id not in active]
            replaced = set()
            if ending:
                replaced = await db_thread(ea_sessions_replaced)(
                    tenant_id=tenant_id, session_ids=[consumer.claims.session_id for consumer in ending]
                )
            for consumer in ending:
                if not consumer.closing:
                    self.consumers.discard(consumer)
                    if consumer.claims.session_id in replaced:
                        await consumer.close_with(CloseCode.REPLACED, SESSION_REPLACED_REASON)
                    else:
                        await consumer.close_with(CloseCode.REVOKED, SESSION_REVOKED_REASON)


def session_watch() -> SessionWatch:
    """The running event loop's watch."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = SessionWatch()
    return watch
