"""What the accounts services share: the tenant transaction on the caller's alias, lenient parsing, the hasher."""

from __future__ import annotations

import ipaddress
from uuid import UUID

from argon2 import PasswordHasher

from suho.routers import OPERATOR, SERVICE, on_operator_path
from suho.tenancy import tenant_context

AUDIT_CATEGORY = "security"

_hasher = PasswordHasher()


def _tenant_transaction(tenant_id: UUID):
    """The tenant context on the alias this code runs on: the operator path (admin, commands) or the service role."""
    return tenant_context(tenant_id, using=OPERATOR if on_operator_path() else SERVICE)


def _uuid_or_none(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value)) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        return None


def _ip_or_none(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None
