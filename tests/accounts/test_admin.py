"""The admin runs on the operator path: staff see every tenant, issue keys (shown once) and revoke them."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connections
from django.http import HttpResponse
from django.test import Client, RequestFactory

from accounts.models import ApiKey, EASession, MT5Account, User
from accounts.services import ea_authenticate
from compliance.models import AuditLog
from suho.admin_site import OperatorAdminMiddleware
from suho.bus import get_bus
from suho.models import OutboxMessage
from suho.routers import on_operator_path, operator_path
from tests.accounts.helpers import account_make, secret_of, tenant_make
from tests.factories import staff_login
from trading.models import EACommand

ACCOUNTS_URL = "/admin/accounts/mt5account/"
KEYS_URL = "/admin/accounts/apikey/"
FULL_KEY = re.compile(r"suho_ea_[0-9a-f]{12}_[A-Za-z0-9_-]{43,}")


@pytest.fixture
def staff(committed) -> User:
    with operator_path():
        return User.objects.create_superuser(username="operator1", email="op@example.com", password="x" * 12)


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    staff_login(client, staff)
    return client


def test_staff_see_accounts_of_every_tenant(admin_client, account):
    other = account_make(tenant_make())
    page = admin_client.get(ACCOUNTS_URL).content.decode()
    assert account.name in page and other.name in page


def test_issue_action_shows_each_key_once_and_stores_only_its_hash(admin_client, staff, account, remote_addr):
    response = admin_client.post(ACCOUNTS_URL, {"action": "issue_api_key", "_selected_action": [str(account.pk)]})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [key] = FULL_KEY.findall(response.content.decode())
    assert ea_authenticate(account_id=account.pk, api_key=key, remote_addr=remote_addr).account_id == account.pk
    with operator_path():
        stored = ApiKey.objects.get(account=account)
        assert secret_of(key) not in stored.secret_hash and stored.created_by_id == staff.pk
        assert AuditLog.objects.get(event_type="api_key_issued").user_id == staff.pk
    assert not FULL_KEY.search(admin_client.get(KEYS_URL).content.decode())  # the list never shows it again


def test_revoke_action_revokes_and_ends_sessions(admin_client, staff, account, issued, remote_addr):
    tokens = ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)

    response = admin_client.post(KEYS_URL, {"action": "revoke", "_selected_action": [str(issued[0].pk)]}, follow=True)

    assert "Revoked 1 API key(s)." in response.content.decode()
    with operator_path():
        assert ApiKey.objects.get(pk=issued[0].pk).revoked_at is not None
        assert EASession.objects.get(session_id=tokens.session_id).end_reason == "revoked"
        assert AuditLog.objects.get(event_type="api_key_revoked").user_id == staff.pk


def test_non_staff_cannot_issue_keys(committed, account):
    with operator_path():
        trader = User.objects.create_user(username="t", email="t@example.com", tenant=account.tenant)
    client = Client()
    client.force_login(trader)

    response = client.post(ACCOUNTS_URL, {"action": "issue_api_key", "_selected_action": [str(account.pk)]})

    assert response.status_code == 302 and "/login/" in response["Location"]
    with operator_path():
        assert not ApiKey.objects.filter(account=account).exists()


@pytest.mark.parametrize(
    ("path", "is_staff", "expected"),
    [("/admin/accounts/apikey/", True, True), ("/admin/", False, False), ("/api/ea/auth", True, False)],
)
def test_only_staff_admin_requests_take_the_operator_path(path, is_staff, expected):
    request = RequestFactory().get(path)
    request.user = User(is_staff=is_staff, is_active=True) if is_staff else AnonymousUser()
    middleware = OperatorAdminMiddleware(lambda request: HttpResponse(str(on_operator_path())))
    if expected:
        with pytest.MonkeyPatch.context() as patch:  # no database needed to observe the path
            patch.setattr("suho.admin_site.transaction.atomic", lambda using: _null())
            assert middleware(request).content == b"True"
    else:
        assert middleware(request).content == b"False"


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


REFUSE_SECOND_ACCOUNT = """
CREATE FUNCTION test_refuse_second_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('test.first_account', true), '') = '' THEN
    PERFORM set_config('test.first_account', NEW.account_id::text, true);
  ELSIF current_setting('test.first_account') <> NEW.account_id::text THEN
    RAISE EXCEPTION 'the test refuses the second account';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_second_account BEFORE UPDATE ON mt5_user_accounts
  FOR EACH ROW EXECUTE FUNCTION test_refuse_second_account();
"""


@pytest.fixture
def second_account_refused(committed):
    """The database refuses the update of the second account one transaction touches (whichever the admin takes
    first goes through): a real failure half-way through an action, with no mock in the way."""
    with connections["owner"].cursor() as cursor:
        cursor.execute(REFUSE_SECOND_ACCOUNT)
    yield
    with connections["owner"].cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_second_account ON mt5_user_accounts;"
                       " DROP FUNCTION test_refuse_second_account()")  # fmt: skip


def test_an_admin_action_whose_second_account_fails_publishes_nothing_for_the_first(
    admin_client, account, second_account_refused
):
    """Issue 19, two faults, each enough to fail this: the outbox wrote its rows in the services' own service-role
    transaction and published when that one committed, before the admin's operator transaction ended; and the admin's
    transaction committed a failed request anyway (Django makes the exception a 500 response before any middleware
    sees it). The first account's new parameters and DISABLE_TRADING reached NATS although the action failed."""
    other = account_make(account.tenant)
    received: list[str] = []
    bus = get_bus()
    subscriptions = [bus.subscribe(f"mt5.*.{a.account_id}.*", lambda subject, data: received.append(subject))
                     for a in (account, other)]  # fmt: skip
    for subscription in subscriptions:
        subscription.result(timeout=5)

    with pytest.raises(DatabaseError, match="the test refuses the second account"):
        admin_client.post(ACCOUNTS_URL, {"action": "disable_trading",
                                         "_selected_action": [str(account.pk), str(other.pk)]})  # fmt: skip
    bus.flush()  # anything published before the failure is delivered to our subscriptions before this returns

    assert received == []
    with operator_path():
        assert not OutboxMessage.objects.exists()
        assert not EACommand.objects.exists()
        assert all(MT5Account.objects.filter(pk__in=[account.pk, other.pk]).values_list("trading_enabled", flat=True))
    for subscription in subscriptions:
        bus.submit(subscription.result().unsubscribe()).result(timeout=5)
