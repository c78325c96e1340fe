"""Reads for accounts: what the EA gateway asks about sessions while a connection lives, and the portal's reads of
accounts, keys and risk events (the portal's reads of trading and signal rows are in trading.selectors)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiKey, EASession, MT5Account
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


def ea_sessions_active(*, tenant_id: UUID, session_ids: list[UUID]) -> set[UUID]:
    """Which of one tenant's sessions may go on (ea_session_active's rule, one query for all of them): the gateway
    checks every live connection of a process this way every ~30 s, one query per tenant instead of one per EA."""
    with tenant_context(tenant_id):
        return set(
            EASession.objects.filter(
                session_id__in=session_ids,
                ended_at__isnull=True,
                api_key__revoked_at__isnull=True,
                account__is_active=True,
                tenant__is_active=True,
            ).values_list("session_id", flat=True)
        )


def ea_sessions_replaced(*, tenant_id: UUID, session_ids: list[UUID]) -> set[UUID]:
    """Which of one tenant's sessions were ended by a newer session of their account (closed with 4012, not 4003)."""
    with tenant_context(tenant_id):
        return set(
            EASession.objects.filter(session_id__in=session_ids, end_reason=EASession.END_REPLACED).values_list(
                "session_id", flat=True
            )
        )


# --- Portal reads (each runs in the signed-in user's tenant context: another tenant's rows are invisible) --------

OFFLINE_AFTER = timedelta(minutes=2)  # an account whose EA sent no heartbeat this long is offline


def ea_is_online(account: MT5Account) -> bool:
    """Online while heartbeats arrive: connected and heard from within the last two minutes."""
    return (
        account.connection_status == "online"
        and account.last_heartbeat_at is not None
        and timezone.now() - account.last_heartbeat_at < OFFLINE_AFTER
    )


def portal_accounts() -> QuerySet[MT5Account]:
    return MT5Account.objects.order_by("created_at")


def portal_account(*, account_id) -> MT5Account | None:
    """The tenant's account with this id; None for an unknown id and for another tenant's account alike."""
    return MT5Account.objects.filter(account_id=account_id).first()


def portal_account_statuses() -> list[dict]:
    """What the portal's live status shows for each account of the tenant: online, last refusal, last EA error."""
    return [
        {"account_id": str(a.account_id), "online": ea_is_online(a),
         "last_heartbeat_at": a.last_heartbeat_at.isoformat() if a.last_heartbeat_at else None,
         "last_refusal_reason": a.last_refusal_reason,
         "last_refusal_at": a.last_refusal_at.isoformat() if a.last_refusal_at else None,
         "last_ea_error": a.last_ea_error}
        for a in portal_accounts()
    ]  # fmt: skip


def account_api_keys(*, account_id) -> list[ApiKey]:
    return list(ApiKey.objects.filter(account_id=account_id).order_by("-created_at"))


def account_api_key(*, account: MT5Account, key_id) -> ApiKey | None:
    return ApiKey.objects.filter(account=account, id=key_id).first()
