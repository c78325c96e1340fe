"""The bench database and its EAs: tenants, traders, MT5 accounts, API keys and live EA sessions, made in bulk.

Argon2 costs ~0.1 s per hash or check on this machine, so thousands of `api_key_create` + `ea_authenticate` calls
would take minutes. Instead every bench key shares one Argon2 hash of one secret (each key keeps its own key id, so
`suho_ea_<key_id>_<secret>` is a valid API key for its account), and the sessions are inserted directly with tokens
minted by `accounts.services.ea_auth._tokens_issue`, the function `ea_authenticate` itself ends with. EAs then send
HELLO with their access token (the documented quick-reconnect path). The API-key path is measured separately
(`api_key_hello_rate`), because it is what a reconnect storm costs.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace

from argon2 import PasswordHasher
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connections

from accounts.models import ApiKey, EASession, MT5Account, Tenant, User
from accounts.services.ea_auth import _tokens_issue
from accounts.services.keys import API_KEY_PREFIX, KEY_ID_BYTES, SECRET_BYTES
from suho.dbsetup import database_setup
from suho.routers import operator_path

BATCH = 1000


@dataclass(frozen=True)
class BenchEA:
    tenant_id: str
    account_id: str
    access_token: str
    api_key: str

    def as_dict(self) -> dict:
        return asdict(self)


def database_create() -> float:
    """Drop and recreate the bench database like tests/conftest.py does; return the seconds it took."""
    started = time.perf_counter()
    for connection in connections.all():
        connection.close()
    database_setup(
        admin_url=settings.DATABASE_ADMIN_URL,
        database=settings.DATABASES["default"]["NAME"],
        owner=settings.DB_OWNER_USER,
        service=settings.DB_SERVICE_USER,
        operator=settings.DB_OPERATOR_USER,
        passwords=settings.DB_ROLE_PASSWORDS,
        timescale=settings.TIMESCALEDB,
        drop_first=True,
    )
    call_command("migrate", database="owner", verbosity=0, interactive=False)
    return time.perf_counter() - started


_session_ids: dict[str, object] = {}  # account id → its bench session's id, for tokens_renew


def tokens_renew(eas: list[BenchEA]) -> list[BenchEA]:
    """The same EAs with fresh access tokens for their sessions: a whole suite run outlasts the tokens' 15 minutes."""
    return [
        replace(ea, access_token=_tokens_issue(
            session=SimpleNamespace(tenant_id=ea.tenant_id, account_id=ea.account_id,
                                    session_id=_session_ids[ea.account_id]),
            generation=0,
        ).access)
        for ea in eas
    ]  # fmt: skip


def sessions_held_by_a_gone_process(eas: list[BenchEA]) -> str:
    """Record every EA's session as held by a web process that no longer exists, as after a deploy: each EA's
    HELLO then asks that process over NATS to close its older session (the takeover), as in production, whatever
    earlier sections did with these EAs. Returns the process's name."""
    node = f"bench-replaced-{secrets.token_hex(3)}"
    ids = [ea.account_id for ea in eas]
    with operator_path():
        for start in range(0, len(ids), BATCH):
            MT5Account.objects.filter(account_id__in=ids[start : start + BATCH]).update(live_session_node=node)
    return node


def accounts_online(account_ids: list[str]) -> int:
    """How many of the accounts the database shows online."""
    with operator_path():
        return sum(
            MT5Account.objects.filter(
                account_id__in=account_ids[start : start + BATCH], connection_status="online"
            ).count()
            for start in range(0, len(account_ids), BATCH)
        )


def eas_create(*, count: int, per_tenant: int = 100, prefix: str = "bench") -> list[BenchEA]:
    """`count` accounts, `per_tenant` to a tenant (one trader each), each with an API key and a live session."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    secret_hash = PasswordHasher().hash(secret)  # one Argon2 hash for all bench keys (see the module docstring)
    run = secrets.token_hex(3)
    tenants, users, accounts, keys = [], [], [], []
    for t in range(-(-count // per_tenant)):
        tenant = Tenant(name=f"Bench {prefix} {t}", slug=f"{prefix}-{run}-{t}")
        user = User(username=f"{prefix}-{run}-{t}", tenant=tenant, password=make_password(None))
        tenants.append(tenant)
        users.append(user)
    for i in range(count):
        tenant, user = tenants[i // per_tenant], users[i // per_tenant]
        account = MT5Account(tenant=tenant, user=user, name=f"{prefix} EA {i}", account_number=9_000_000 + i)
        accounts.append(account)
        keys.append(
            ApiKey(
                tenant=tenant,
                account=account,
                key_id=secrets.token_hex(KEY_ID_BYTES),
                secret_hash=secret_hash,
                label="bench",
            )
        )
    sessions = [EASession(tenant=k.tenant, account=k.account, api_key=k) for k in keys]
    with operator_path():
        for model, rows in (
            (Tenant, tenants),
            (User, users),
            (MT5Account, accounts),
            (ApiKey, keys),
            (EASession, sessions),
        ):
            model.objects.bulk_create(rows, batch_size=BATCH)
    _session_ids.update({str(session.account_id): session.session_id for session in sessions})
    return [
        BenchEA(
            tenant_id=str(session.tenant_id),
            account_id=str(session.account_id),
            access_token=_tokens_issue(session=session, generation=0).access,
            api_key=f"{API_KEY_PREFIX}{key.key_id}_{secret}",
        )
        for session, key in zip(sessions, keys, strict=True)
    ]
