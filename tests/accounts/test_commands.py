"""`create_api_key` prints a working key on its last line; `seed_demo` is idempotent and prints secrets once."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.demo import demo_ea_file, demo_ea_file_read
from accounts.management.commands.create_api_key import ACCOUNT_NOT_FOUND
from accounts.models import ApiKey, MT5Account, Tenant, User
from accounts.services import ea_authenticate
from compliance.models import AuditLog
from suho.routers import operator_path
from tests.accounts.helpers import secret_of

FULL_KEY = re.compile(r"suho_ea_[0-9a-f]{12}_[A-Za-z0-9_-]{43,}")


@pytest.fixture(autouse=True)
def state_dir(settings, tmp_path):
    """seed_demo writes the demo EA's key file into STATE_DIR: never the checkout's own `.state/` in tests."""
    settings.STATE_DIR = tmp_path / "state"
    return settings.STATE_DIR


def run(command: str, *args, **options) -> list[str]:
    out = io.StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue().splitlines()


def counts() -> dict[str, int]:
    with operator_path():
        return {m.__name__: m.objects.count() for m in (Tenant, User, MT5Account, ApiKey)}


def test_create_api_key_prints_a_working_key_alone_on_the_last_line(account, remote_addr):
    lines = run("create_api_key", "--account", str(account.pk), "--label", "vps-1")

    key = lines[-1]
    assert FULL_KEY.fullmatch(key), lines
    assert not any(key in line for line in lines[:-1])
    tokens = ea_authenticate(account_id=account.pk, api_key=key, remote_addr=remote_addr)
    assert (tokens.account_id, tokens.tenant_id) == (account.pk, account.tenant_id)
    with operator_path():
        stored = ApiKey.objects.get(account=account)
        assert stored.label == "vps-1" and secret_of(key) not in stored.secret_hash
        assert AuditLog.objects.filter(event_type="api_key_issued", account_id=account.pk).count() == 1


@pytest.mark.parametrize("account_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_create_api_key_for_an_unknown_account_fails_and_issues_nothing(committed, account_id):
    before = counts()
    with pytest.raises(CommandError) as failed:
        run("create_api_key", "--account", account_id)
    assert str(failed.value) == ACCOUNT_NOT_FOUND.format(account_id=account_id)
    assert counts() == before


def test_seed_demo_twice_creates_once_and_prints_secrets_only_the_first_time(committed, remote_addr):
    first = run("seed_demo")
    after_first = counts()
    second = run("seed_demo")

    assert after_first == {"Tenant": 1, "User": 2, "MT5Account": 1, "ApiKey": 1}
    assert counts() == after_first
    key = first[-1]
    assert FULL_KEY.fullmatch(key), first
    assert sum("password: " in line for line in first) == 2
    operator_line = next(line for line in first if line.startswith("Operator (admin"))
    assert "log in as user 'admin', password: " in operator_line  # the login named, not only a password (issue 20)
    assert any(line.startswith("Portal (trader") and "user 'demo', password: " in line for line in first)
    second_text = "\n".join(second)
    assert "password: " not in second_text and not FULL_KEY.search(second_text)
    assert "exists" in second_text and "created" not in second_text

    with operator_path():
        account = MT5Account.objects.get()
        assert (account.name, account.account_type, account.tenant.name) == ("Demo EA", "demo", "Demo Trading")
        admin = User.objects.get(username="admin")
        assert admin.is_superuser and admin.is_staff and admin.tenant_id is None
        assert User.objects.get(username="demo").tenant_id == account.tenant_id
        assert AuditLog.objects.filter(event_type="demo_seeded").count() == 1
    assert ea_authenticate(account_id=account.pk, api_key=key, remote_addr=remote_addr).account_id == account.pk


@override_settings(DEMO_PASSWORD="demo-password-from-env", DEMO_ADMIN_PASSWORD="admin-password-from-env")
def test_seed_demo_takes_passwords_from_settings(committed):
    lines = run("seed_demo")
    assert any("password: demo-password-from-env" in line for line in lines)
    with operator_path():
        assert User.objects.get(username="demo").check_password("demo-password-from-env")
        assert User.objects.get(username="admin").check_password("admin-password-from-env")


def test_seed_demo_writes_the_demo_ea_key_file_once_readable_by_its_owner_only(committed, remote_addr):
    first = run("seed_demo")
    path = demo_ea_file()
    written = path.read_text()
    account_id, key = demo_ea_file_read()
    assert (path.stat().st_mode & 0o777, key) == (0o600, first[-1])
    assert any(str(path) in line for line in first)

    second = run("seed_demo")
    assert path.read_text() == written and not any(str(path) in line for line in second)
    tokens = ea_authenticate(account_id=account_id, api_key=key, remote_addr=remote_addr)
    assert str(tokens.account_id) == account_id
