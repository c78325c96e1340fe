"""The gateway's process-wide session check: one query per tenant closes exactly the connections that must end."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from django.utils import timezone

from accounts.services import api_key_create, api_key_revoke, ea_access_verify, ea_authenticate, ea_session_end
from binproto import CloseCode
from tests.accounts.helpers import account_make, remote_addr_make, tenant_make
from trading.connection import ea_session_claim
from trading.gateway import SESSION_REPLACED_REASON
from trading.session_watch import ACCESS_EXPIRED_REASON, SESSION_REVOKED_REASON, SessionWatch


class Connection:
    """What the watch uses of a consumer: its claims, whether it is closing, and close_with."""

    def __init__(self, claims) -> None:
        self.claims, self.closing, self.closed_with = claims, False, None

    async def close_with(self, code, reason) -> None:
        self.closing, self.closed_with = True, (code, reason)


def connection(tenant, *, expired: bool = False):
    account = account_make(tenant)
    key, secret = api_key_create(account=account, label="watch")
    tokens = ea_authenticate(account_id=account.account_id, api_key=secret, remote_addr=remote_addr_make())
    claims = ea_access_verify(token=tokens.access)
    if expired:
        claims = dataclasses.replace(claims, expires_at=timezone.now() - timedelta(seconds=1))
    return Connection(claims), key


def test_one_check_closes_the_revoked_ended_and_expired_connections_and_no_other(committed):
    tenant_a, tenant_b = tenant_make(), tenant_make()
    kept_a, _ = connection(tenant_a)
    kept_b, _ = connection(tenant_b)
    revoked, revoked_key = connection(tenant_a)
    ended, _ = connection(tenant_b)
    expired, _ = connection(tenant_b, expired=True)
    api_key_revoke(api_key=revoked_key)
    ea_session_end(session_id=ended.claims.session_id, tenant_id=tenant_b.pk, reason="logout")
    watch = SessionWatch()
    watch.consumers = {kept_a, kept_b, revoked, ended, expired}

    asyncio.run(watch.check())

    assert revoked.closed_with == ended.closed_with == (CloseCode.REVOKED, SESSION_REVOKED_REASON)
    assert expired.closed_with == (CloseCode.SESSION_EXPIRED, ACCESS_EXPIRED_REASON)
    assert kept_a.closed_with is None and kept_b.closed_with is None
    assert watch.consumers == {kept_a, kept_b}


def test_a_session_a_newer_one_replaced_is_closed_with_4012_though_its_process_was_never_told(committed):
    tenant = tenant_make()
    account = account_make(tenant)
    _key, secret = api_key_create(account=account)
    first, second = (ea_authenticate(account_id=account.account_id, api_key=secret) for _ in range(2))
    older = Connection(ea_access_verify(token=first.access))
    for tokens, node in ((first, "a"), (second, "b")):  # claimed on process a, then on b, which cannot reach a
        ea_session_claim(tenant_id=tenant.pk, account_id=account.account_id, session_id=tokens.session_id, node=node)
    watch = SessionWatch()
    watch.consumers = {older}

    asyncio.run(watch.check())

    assert older.closed_with == (CloseCode.REPLACED, SESSION_REPLACED_REASON)


def test_a_session_claimed_under_another_tenant_is_not_active(committed):
    tenant_a, tenant_b = tenant_make(), tenant_make()
    forged, _ = connection(tenant_a)
    forged.claims = dataclasses.replace(forged.claims, tenant_id=tenant_b.pk)  # the session is tenant A's
    watch = SessionWatch()
    watch.consumers = {forged}

    asyncio.run(watch.check())

    assert forged.closed_with == (CloseCode.REVOKED, SESSION_REVOKED_REASON)
