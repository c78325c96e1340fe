"""Row builders for the accounts tests (imported by conftest and tests alike: one module, one counter)."""

from __future__ import annotations

import itertools
import random

from accounts.models import MT5Account, Tenant, User
from suho.routers import operator_path

_serial = itertools.count(1)


def tenant_make(**fields) -> Tenant:
    n = next(_serial)
    with operator_path():
        return Tenant.objects.create(**{"name": f"Tenant {n}", "slug": f"tenant-{n}", **fields})


def account_make(tenant: Tenant, **fields) -> MT5Account:
    n = next(_serial)
    with operator_path():
        user = User.objects.create_user(username=f"trader{n}", email=f"trader{n}@example.com", tenant=tenant)
        return MT5Account.objects.create(tenant=tenant, user=user, name=f"EA {n}", account_number=70000 + n, **fields)


def remote_addr_make() -> str:
    """A fresh client address per test: the per-IP failure counters live in Redis across tests."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def secret_of(plaintext_key: str) -> str:
    """The secret part of `suho_ea_<key_id>_<secret>` (the secret itself may contain underscores)."""
    return plaintext_key.removeprefix("suho_ea_").split("_", 1)[1]
