"""Reads for accounts: what the EA gateway asks about sessions while a connection lives."""

from __future__ import annotations

from uuid import UUID

from accounts.models import EASession
from suho.tenancy import tenant_context


def ea_session_active(*, session_id: UUID, tenant_id: UUID) -> bool:
    """Whether the session may go on: not ended, its key not revoked, its account and tenant enabled.

    The gateway polls this (every ~30 s) for each live connection, so revoking a key ends its sockets within a
    minute although the access token itself stays valid until it expires.
    """
    with tenant_context(tenant_id):
        return EASession.objects.filter(
            session_id=session_id,
            ended_at__isnull=True,
            api_key__revoked_at__isnull=True,
            account__is_active=True,
            tenant__is_active=True,
        ).exists()
