"""The demo data `make run` starts with: a tenant, a trader, an operator, one MT5 account and its API key.

Idempotent: what exists is kept, and secrets (passwords, the API key) are returned only when they were just made.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from django.conf import settings

from accounts.models import ApiKey, MT5Account, Tenant, User
from accounts.services import api_key_create, mt5_account_create, operator_totp_enable
from suho.audit import audit_record
from suho.routers import operator_path

DEMO_TENANT_SLUG = "demo"
DEMO_TENANT_NAME = "Demo Trading"
DEMO_USERNAME = "demo"
DEMO_ADMIN_USERNAME = "admin"
DEMO_ACCOUNT_NAME = "Demo EA"
DEMO_EA_FILE = "demo_ea.txt"  # in settings.STATE_DIR: "account_id api_key", read by `eaclient.simulate --demo`


@dataclass(frozen=True)
class DemoSeed:
    tenant: Tenant
    user: User
    admin: User
    account: MT5Account
    api_key: ApiKey
    created: tuple[str, ...]  # what this run made: "tenant", "user", "admin", "admin_totp", "account", "api_key"
    user_password: str | None  # the secrets, only when this run made them
    admin_password: str | None
    api_key_plaintext: str | None
    admin_totp_uri: str | None  # the operator's otpauth:// URI, only when this run enrolled the second factor


def demo_seed(*, user_password: str | None = None, admin_password: str | None = None) -> DemoSeed:
    """Create whatever of the demo set is missing. Runs on the operator path (it is an operator's job)."""
    created: list[str] = []
    new_user_password = new_admin_password = plaintext = totp_uri = None
    with operator_path():
        tenant, made = Tenant.objects.get_or_create(slug=DEMO_TENANT_SLUG, defaults={"name": DEMO_TENANT_NAME})
        created += ["tenant"] if made else []

        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            new_user_password = user_password or secrets.token_urlsafe(12)
            user = User.objects.create_user(
                username=DEMO_USERNAME, email="demo@example.com", password=new_user_password, tenant=tenant
            )
            created.append("user")

        admin = User.objects.filter(username=DEMO_ADMIN_USERNAME).first()
        if admin is None:
            new_admin_password = admin_password or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(
                username=DEMO_ADMIN_USERNAME, email="admin@example.com", password=new_admin_password
            )
            created.append("admin")
        if not admin.totp_secret:  # staff need a second factor (OPERATOR_2FA_REQUIRED): enrol it with the password
            admin.totp_secret, totp_uri = operator_totp_enable(user=admin)
            created.append("admin_totp")

        account = MT5Account.objects.filter(tenant=tenant, name=DEMO_ACCOUNT_NAME).first()
        if account is None:
            account = mt5_account_create(
                user=user, name=DEMO_ACCOUNT_NAME, account_type=MT5Account.AccountType.DEMO, account_number=10000001,
                broker="Suho Demo Broker", server="SuhoDemo-Server", currency="USD", leverage=100,
                strategy_parameters={"reference_strategy": True},  # signals from the reference strategy, if enabled
            )  # fmt: skip
            created.append("account")

        api_key = ApiKey.objects.filter(account=account, revoked_at__isnull=True).order_by("-created_at").first()
        if api_key is None:
            api_key, plaintext = api_key_create(account=account, created_by=user, label="demo")
            created.append("api_key")

        if created:
            audit_record(
                tenant_id=None, event_type="demo_seeded", category="platform", action="create",
                description=f"Demo data created: {', '.join(created)}", account_id=account.pk,
                metadata={"created": created, "tenant_id": str(tenant.pk)},
            )  # fmt: skip
    return DemoSeed(
        tenant=tenant, user=user, admin=admin, account=account, api_key=api_key, created=tuple(created),
        user_password=new_user_password, admin_password=new_admin_password, api_key_plaintext=plaintext,
        admin_totp_uri=totp_uri,
    )  # fmt: skip


def demo_ea_file() -> Path:
    return Path(settings.STATE_DIR) / DEMO_EA_FILE


def demo_ea_file_write(*, account_id: UUID, api_key: str) -> Path:
    """Keep the demo key for `make run`'s simulated EA: owner-only (0600), in the git-ignored state directory."""
    path = demo_ea_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # a file that existed keeps its old mode through O_CREAT
        handle.write(f"{account_id} {api_key}\n")
    return path


def demo_ea_file_read() -> tuple[str, str] | None:
    """(account id, API key) from the demo EA file, or None when there is none."""
    try:
        account_id, api_key = demo_ea_file().read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return account_id, api_key
