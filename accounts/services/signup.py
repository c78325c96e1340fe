"""Sign-up and MT5 accounts: a tenant with its first user, and the trader's MT5 accounts."""

from __future__ import annotations

import secrets

from django.db import transaction

from accounts.models import MT5Account, User
from accounts.services._common import _tenant_transaction
from suho.audit import audit_record
from suho.routers import OPERATOR
from suho.tenancy import tenant_context


def mt5_account_create(*, user: User, name: str, by: User | None = None, **fields) -> MT5Account:
    """Add an MT5 account for a trader (in the trader's tenant); `fields` are MT5Account fields."""
    with _tenant_transaction(user.tenant_id):
        account = MT5Account.objects.create(tenant_id=user.tenant_id, user=user, name=name, **fields)
        audit_record(
            tenant_id=user.tenant_id, event_type="mt5_account_created", category="account", action="create",
            description=f"MT5 account {account} added", user_id=(by or user).pk, account_id=account.pk,
            metadata={"name": name, "account_type": account.account_type},
        )  # fmt: skip
    return account


def tenant_signup(*, name: str, username: str, email: str, password: str) -> User:
    """Create a tenant and its first user (identity rows: operator alias), and audit the sign-up in its chain.

    The caller validates uniqueness (the form does); the database's unique constraints are the last word.
    """
    from django.utils.text import slugify

    from accounts.models import Tenant

    with transaction.atomic(using=OPERATOR):
        tenant = Tenant.objects.create(name=name, slug=f"{slugify(name)[:80] or 'tenant'}-{secrets.token_hex(4)}")
        user = User(username=username, email=email, tenant=tenant)
        user.set_password(password)
        user.save()
    with tenant_context(tenant.id):
        audit_record(
            tenant_id=tenant.id, event_type="tenant_signed_up", category="account", action="create",
            description=f"Tenant {tenant.slug} signed up", user_id=user.pk, metadata={"slug": tenant.slug},
        )  # fmt: skip
    return user
